"""The daemon's libtorrent session, there only while there is a swarm to be in.

An agent spends nearly all its life with nothing to download or seed. A libtorrent
session then costs memory (the module alone is about 9 MiB, a session's buffers and
threads more) and CPU (its threads, and the 0.2 s alert poll of `PeerSession.run`) for
nothing. So:

- Nothing of libtorrent is imported until the first download: `agent.peer_session` (and
  with it libtorrent) is imported then, and the session is created then.
- The session lives while a download runs or a finished payload is still seeded (its
  `seed_time`). Once neither holds, it is shut down (torrents removed, files kept;
  libtorrent tells the tracker we stopped) and its memory handed back to the OS
  (`gc.collect()`, then glibc's `malloc_trim`). A later download creates a new one.
- Between sessions nothing listens on the P2P port and local service discovery is off:
  there is nothing to offer. `seeding()` is empty and `add_peer()` says no.

What cannot be undone inside one process: a Python extension module, once imported,
stays loaded. The figures (tests/bench/bench_idle_agent.py, README "Idle footprint")
say what that leaves after a rollout.

Settings are validated when this object is made, so a bad `[p2p]` section still stops
the daemon at start, not at its first download.
"""

from __future__ import annotations

import ctypes
import gc
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from agent.errors import ConfigError
from agent.torrent_network import split_listen

if TYPE_CHECKING:
    from agent.peer_session import DownloadResult, PeerSession

log = logging.getLogger(__name__)

IDLE_CHECK_SECONDS = 1.0
"""How often a running session is asked whether it still has a download or a seed."""


class OnDemandPeerSession:
    """`PeerSession`'s interface (download, seeding, add_peer, run), with the session
    created by the first download and dropped when it has nothing left to do."""

    def __init__(
        self,
        listen: str,
        upload_limit: int = 0,
        download_limit: int = 0,
        local_discovery: bool = False,
        seed_time: float = 3600,
        device_id: str | None = None,
        on_change: Callable[[str], None] = lambda text: None,
    ) -> None:
        split_listen(listen)
        if upload_limit < 0 or download_limit < 0 or seed_time < 0:
            raise ConfigError("rate limits and seed time must be >= 0 (0 = unlimited / none)")
        self.listen = listen
        self._settings = {
            "listen": listen, "upload_limit": upload_limit, "download_limit": download_limit,
            "local_discovery": local_discovery, "seed_time": seed_time, "device_id": device_id,
        }
        self._on_change = on_change
        self._session: PeerSession | None = None
        self._downloads = 0
        self._created = trio.Event()
        self.sessions_created = 0
        """How many sessions this object has made (tests and status)."""
        self.downloaded = {"peers": 0, "hub-seeder": 0, "web-seed": 0}
        """Payload bytes of finished downloads since start, by whom they came from
        (DownloadResult; agent/metrics/)."""
        self._uploaded_by_closed = 0

    @property
    def active(self) -> bool:
        """Whether a libtorrent session exists now."""
        return self._session is not None

    async def download(
        self,
        torrent_bytes: bytes,
        save_dir: Path,
        tracker_url: str,
        web_seed_url: str | None = None,
        web_seed_after: float = 10.0,
        timeout: float | None = None,
        on_progress: Callable[[float], None] | None = None,
        recheck: bool = False,
    ) -> DownloadResult:
        """`PeerSession.download`, in the session, which is created first if need be."""
        self._downloads += 1
        try:
            session = self._session or self._create()
            result = await session.download(
                torrent_bytes, save_dir, tracker_url, web_seed_url=web_seed_url,
                web_seed_after=web_seed_after, timeout=timeout, on_progress=on_progress,
                recheck=recheck,
            )
            self.downloaded["peers"] += result.from_peers
            self.downloaded["hub-seeder"] += result.from_hub_seeder
            self.downloaded["web-seed"] += result.from_web_seed
            return result
        finally:
            self._downloads -= 1

    async def remove(self, info_hash_v1: str, timeout: float = 30.0) -> bool:
        """`PeerSession.remove`; without a session there is nothing to close (True)."""
        if self._session is None:
            return True
        self._downloads += 1  # the session stays until libtorrent has confirmed
        try:
            return await self._session.remove(info_hash_v1, timeout)
        finally:
            self._downloads -= 1

    def uploaded_bytes(self) -> int:
        """Payload bytes sent to peers since start, by every session this object made."""
        live = 0 if self._session is None else self._session.uploaded_bytes()
        return self._uploaded_by_closed + live

    def seeding(self) -> list[str]:
        """v1 info-hashes (hex) the session holds; none without a session."""
        return [] if self._session is None else self._session.seeding()

    def holds_files(self) -> set[str]:
        """`PeerSession.holds_files`: none without a session, which is only dropped once
        libtorrent has confirmed every removal (its files are closed)."""
        return set() if self._session is None else self._session.holds_files()

    def add_peer(self, info_hash_v1: str, ip: str, port: int) -> bool:
        """`PeerSession.add_peer`; False without a session (there is no swarm to join)."""
        return self._session is not None and self._session.add_peer(info_hash_v1, ip, port)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """While a session exists, run its alert loop; drop it once it has no download
        and nothing to seed. Runs until cancelled, like `PeerSession.run`."""
        self._on_change("no libtorrent session (nothing to download or seed)")
        task_status.started()
        try:
            while True:
                await self._created.wait()
                session = self._session
                assert session is not None
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(session.run)
                    while self._downloads or session.holds_files():
                        await trio.sleep(IDLE_CHECK_SECONDS)
                    nursery.cancel_scope.cancel()
                await self._drop()
        finally:
            if self._session is not None:
                self._uploaded_by_closed += self._session.uploaded_bytes()
                self._session.close()
                self._session = None

    def _create(self) -> PeerSession:
        from agent.peer_session import PeerSession

        session = PeerSession(**self._settings)  # type: ignore[arg-type]
        self._session = session
        self.sessions_created += 1
        self._created.set()
        log.info("libtorrent session started on %s", self.listen)
        self._on_change(f"libtorrent session on {self.listen}")
        return session

    async def _drop(self) -> None:
        session, self._session = self._session, None
        self._created = trio.Event()
        if session is not None:
            self._uploaded_by_closed += session.uploaded_bytes()
            # libtorrent's shutdown waits (up to stop_tracker_timeout) for the tracker.
            await trio.to_thread.run_sync(session.close)
            del session
        await trio.to_thread.run_sync(release_freed_memory)
        log.info("nothing to download or seed: libtorrent session closed")
        if self._session is None:  # no download began a new one meanwhile
            self._on_change("no libtorrent session (nothing to download or seed)")


def release_freed_memory() -> None:
    """Collect garbage, then ask glibc to return free heap pages to the OS: without
    `malloc_trim` a freed session's arenas stay in the process's RSS."""
    gc.collect()
    try:
        trim = ctypes.CDLL(None).malloc_trim  # the C library the interpreter runs on
    except (OSError, AttributeError):  # not glibc (musl has no malloc_trim)
        return
    trim(0)
