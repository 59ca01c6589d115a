"""Make the .torrent of a payload, and the payload's SHA-256, for the publisher.

A payload is always one file, so the torrent is a single-file HYBRID v1+v2 torrent
(DESIGN §7): v2's SHA-256 piece trees protect every piece, and a single file needs no
BEP 47 pad files. Who can join the swarm: clients on libtorrent 2.0 or later
(qBittorrent 4.4+, tested with 4.5; Deluge 2.0 built on libtorrent 2.0) and
Transmission 4.0+. Not the v1-only parsers, which stumble on the empty dictionary key
that BEP 52's file tree puts under every file name (`{"payload.tar": {"": {length,
pieces root}}}`), although the v1 half would suit them: Transmission 3.00 refuses the
whole .torrent; aria2 1.36 drops the key, so the info-hash it computes is not the
torrent's and it announces a swarm nobody is in, but it can finish from the web seed
(tested: tests/e2e/test_standard_clients.py; README, "Standard clients").

The torrent names the hub's tracker (`announce`) and web seed (BEP 19 `url-list`, the
payload's URL under /payloads/) when the publisher passes them, so a stock client can
join the hub's swarm or finish from HTTP alone. Both sit outside the info dict: the
info-hashes do not depend on them, and Meisitong's own sessions drop them on load
(agent/torrent_network.py) and use the hub they know at run time. The torrent carries no
creation date, so the same payload and URLs always give the same torrent bytes.

Reading the payload twice: libtorrent's Python bindings can only hash the file themselves
(`set_piece_hashes`; there is no binding to hand it v2 block hashes we computed), so the
whole-file SHA-256 the signed target needs is a second pass (`hash_file`). The second read
comes from the page cache for any payload that fits in memory, and both passes are fast
(measured on the build machine: 256 MiB in about 0.3 s for the torrent, 0.2 s for SHA-256).
A caller that wants them overlapped can run the two in separate worker threads.

Both functions block for as long as the hashing takes; async callers run them through
`trio.to_thread.run_sync`, and `progress` is then called from that worker thread.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import libtorrent as lt

from hub.errors import PublishError

log = logging.getLogger(__name__)

CREATED_BY = "meisitong"
_CHUNK = 1 << 20

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class MadeTorrent:
    """A bencoded hybrid torrent and the facts about it a release records."""

    torrent_bytes: bytes
    info_hash_v1: str
    """40 lowercase hex digits (SHA-1 of the info dict)."""
    info_hash_v2: str
    """64 lowercase hex digits (SHA-256 of the info dict)."""
    piece_size: int
    num_pieces: int


def make_hybrid_torrent(
    payload: Path,
    progress: Progress | None = None,
    piece_size: int = 0,
    web_seed: str | None = None,
    tracker: str | None = None,
) -> MadeTorrent:
    """Hash `payload` into a single-file hybrid v1+v2 torrent.

    `piece_size` 0 lets libtorrent choose (it aims at a torrent of reasonable size);
    otherwise it must be a power of two of at least 16 KiB, as v2 requires.
    `web_seed` (the payload file's own URL, BEP 19) and `tracker` (an announce URL) are
    written outside the info dict when given.
    `progress(done_pieces, total_pieces)` is called as pieces are hashed.
    Raises PublishError if the payload is not a non-empty regular file or cannot be read.
    """
    payload = Path(payload)
    if not payload.is_file():
        raise PublishError(f"payload {payload}: not a regular file")
    if payload.stat().st_size == 0:
        raise PublishError(f"payload {payload}: empty file; a torrent needs at least one byte")
    if piece_size and (piece_size < 16 * 1024 or piece_size & (piece_size - 1)):
        raise PublishError(
            f"piece size {piece_size}: must be 0 (automatic) or a power of two >= 16384"
        )
    try:
        files = lt.list_files(str(payload))
        # No v1_only / v2_only flag: libtorrent 2 makes a hybrid torrent by default.
        creator = lt.create_torrent(files, piece_size)
        creator.set_creator(CREATED_BY)
        creator.set_creation_date(0)
        if web_seed:
            creator.add_url_seed(web_seed)
        if tracker:
            creator.add_tracker(tracker)
        total = creator.num_pieces()
        done = 0

        def on_piece(_index: int) -> None:
            nonlocal done
            done += 1
            if progress is not None:
                progress(done, total)

        lt.set_piece_hashes(creator, str(payload.parent), on_piece)
        torrent_bytes = lt.bencode(creator.generate())
        info = lt.torrent_info(torrent_bytes)
    except RuntimeError as exc:  # libtorrent reports I/O and format errors this way
        raise PublishError(f"payload {payload}: making its torrent failed: {exc}") from exc
    hashes = info.info_hashes()
    made = MadeTorrent(
        torrent_bytes=torrent_bytes,
        info_hash_v1=str(hashes.v1),
        info_hash_v2=str(hashes.v2),
        piece_size=info.piece_length(),
        num_pieces=info.num_pieces(),
    )
    log.info(
        "made torrent for %s: v1 %s, v2 %s, %d pieces of %d bytes",
        payload, made.info_hash_v1, made.info_hash_v2, made.num_pieces, made.piece_size,
    )
    return made


def hash_file(path: Path, progress: Progress | None = None) -> tuple[int, str]:
    """(length, SHA-256 hex) of a file, read in 1 MiB chunks.

    `progress(done_bytes, total_bytes)` is called after every chunk.
    Raises PublishError if the file cannot be read.
    """
    digest = hashlib.sha256()
    length = 0
    try:
        total = Path(path).stat().st_size
        with open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
                length += len(chunk)
                if progress is not None:
                    progress(length, total)
    except OSError as exc:
        raise PublishError(f"payload {path}: cannot read it: {exc}") from exc
    return length, digest.hexdigest()
