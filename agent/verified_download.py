"""Fetch a release's payload peer to peer and accept it only if it matches its signed target.

What it guarantees:
- The whole file is hashed only once libtorrent has written every piece to disk
  (`PeerSession.download` waits for that), so a file still being written is never judged.
- A mismatch is never final at first sight. libtorrent has already checked every piece,
  so a whole file that does not match its signed length and hashes is either a file
  changed on disk since, or a torrent that describes other bytes than the signed target.
  The file is rechecked piece by piece (up to PAYLOAD_RECHECKS times) and any piece that
  fails is fetched again; only a file that still does not match is refused.
- A refused payload is deleted only once libtorrent has closed it (torrent_removed_alert);
  if it does not confirm in time, the file stays and the daemon's pruning of finished
  downloads removes it once `PeerSession.holds_files()` no longer names it.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import trio
from tuf.api.metadata import TargetFile

from agent.errors import PayloadVerificationError
from agent.metadata_client import MetadataClient
from agent.on_demand_peers import OnDemandPeerSession

if TYPE_CHECKING:
    from agent.peer_session import DownloadResult

log = logging.getLogger(__name__)

PAYLOAD_RECHECKS = 2


async def fetch_verified_payload(
    peers: OnDemandPeerSession,
    metadata: MetadataClient,
    target: TargetFile,
    torrent: bytes,
    save_dir: Path,
    *,
    tracker_url: str,
    web_seed_url: str,
    web_seed_after: float,
    timeout: float,
) -> DownloadResult:
    """Download `torrent` into `save_dir` and check it against `target`.

    Raises DownloadError when the payload cannot be fetched now (retry later), and
    PayloadVerificationError when it was fetched, rechecked and still does not match;
    `save_dir` has then been deleted, or is left for pruning if libtorrent keeps it open.
    """
    for attempt in range(PAYLOAD_RECHECKS + 1):
        downloaded = await peers.download(
            torrent,
            save_dir,
            tracker_url=tracker_url,
            web_seed_url=web_seed_url,
            web_seed_after=web_seed_after,
            timeout=timeout,
            recheck=attempt > 0,
        )
        try:
            await trio.to_thread.run_sync(metadata.verify_payload, downloaded.path, target)
        except PayloadVerificationError as exc:
            if attempt == PAYLOAD_RECHECKS:
                await _discard(peers, downloaded.info_hash_v1, save_dir)
                raise PayloadVerificationError(
                    f"{exc} (still, after {PAYLOAD_RECHECKS} rechecks of every piece)"
                ) from None
            log.warning(
                "%s although libtorrent passed every piece; rechecking the file (%d of %d)",
                exc, attempt + 1, PAYLOAD_RECHECKS,
            )
            continue
        if attempt:
            log.info("%s: matches its signed target after %d recheck(s)", downloaded.path,
                     attempt)
        return downloaded
    raise AssertionError("unreachable")  # the loop returns or raises


async def _discard(peers: OnDemandPeerSession, info_hash_v1: str, save_dir: Path) -> None:
    if await peers.remove(info_hash_v1):
        await trio.to_thread.run_sync(_remove_tree, save_dir)  # payloads can be gigabytes
    else:
        log.warning("%s: refused payload left in place: libtorrent has not closed it yet; "
                    "it is pruned once it has", save_dir)


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
