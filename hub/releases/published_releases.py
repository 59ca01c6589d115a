"""Which releases are published, as the serving hub's tracker and web seed need to know.

A release is published once its row is in the `releases` table, which `publish` writes
only after the release key has signed its target (hub/releases/publisher.py). Before that the
payload file may already sit in the payload directory; it must not be served, and its
swarm must not be tracked: an unsigned payload is nothing an agent may fetch, and a
tracker that tracks any info-hash is a free tracker for anyone's torrents.

What is found is cached for `max_age` seconds (read through a worker thread). What is
not found is read again, by a read that began after the question was asked, before the
answer is "not published": a standard client fetching a payload the moment `publish`
returned got a 404 for up to a second (tuf-js in tests/e2e/test_standard_clients.py).
Such re-reads come at most every MISS_REREAD_SECONDS, so a flood of questions for
unknown info-hashes costs at most 20 indexed reads a second.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import trio

from hub.database import HubDatabase

DEFAULT_MAX_AGE = 1.0
MISS_REREAD_SECONDS = 0.05


@dataclass(frozen=True)
class PublishedSet:
    targets: frozenset[str]
    """Release target paths, as served under /payloads/."""
    releases: dict[bytes, bytes]
    """Swarm info-hash (v1, and v2 truncated to 20 bytes as libtorrent announces it)
    -> the release's v1 info-hash: both swarms of a hybrid torrent name one release."""


def read_published(database_path: Path) -> PublishedSet:
    database = HubDatabase(database_path)
    try:
        rows = database.query("SELECT target, info_hash_v1, info_hash_v2 FROM releases")
    finally:
        database.close()
    releases: dict[bytes, bytes] = {}
    for row in rows:
        v1 = bytes.fromhex(row["info_hash_v1"])
        releases[v1] = v1
        if row["info_hash_v2"]:
            releases[bytes.fromhex(row["info_hash_v2"])[:20]] = v1
    return PublishedSet(frozenset(str(row["target"]) for row in rows), releases)


class PublishedReleases:
    """A cached view of the `releases` table, shared by the tracker and the web seed."""

    def __init__(
        self,
        read: Callable[[], PublishedSet],
        max_age: float = DEFAULT_MAX_AGE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read = read
        self._max_age = max_age
        self._clock = clock
        self._current: PublishedSet | None = None
        self._read_at = 0.0
        self._lock = trio.Lock()
        self._miss_lock = trio.Lock()

    @classmethod
    def from_database(
        cls, database_path: Path, max_age: float = DEFAULT_MAX_AGE
    ) -> PublishedReleases:
        return cls(lambda: read_published(database_path), max_age)

    @classmethod
    def fixed(
        cls, releases: dict[bytes, bytes], targets: frozenset[str] = frozenset()
    ) -> PublishedReleases:
        """A set that never changes (test processes that have no hub database)."""
        fixed = PublishedSet(targets, dict(releases))
        return cls(lambda: fixed, max_age=float("inf"))

    async def current(self) -> PublishedSet:
        async with self._lock:  # one read at a time, however many requests wait
            now = self._clock()
            if self._current is None or now - self._read_at >= self._max_age:
                self._current = await trio.to_thread.run_sync(self._read)
                self._read_at = now
            return self._current

    async def _read_after(self, asked: float) -> PublishedSet:
        """A view read after `asked`: what was committed before the question is in it.

        Questions that found nothing wait for each other here, never for the lock that
        questions answered from the cache take: a flood of unknown info-hashes slows
        only itself."""
        async with self._miss_lock:
            if self._current is not None and self._read_at >= asked:
                return self._current
            wait = self._read_at + MISS_REREAD_SECONDS - self._clock()
            if wait > 0:
                await trio.sleep(wait)
            async with self._lock:
                if self._current is None or self._read_at < asked:
                    started = self._clock()
                    self._current = await trio.to_thread.run_sync(self._read)
                    self._read_at = started
                return self._current

    def invalidate(self) -> None:
        """Read the table at the next question: the caller saw a release appear (the
        hub's seeder is about to announce it, and a refused announce makes libtorrent
        back off for 15 s or more)."""
        self._current = None

    async def release_of(self, info_hash: bytes) -> bytes | None:
        """The release a swarm belongs to, None when it is no published release's."""
        asked = self._clock()
        found = (await self.current()).releases.get(info_hash)
        if found is None:
            found = (await self._read_after(asked)).releases.get(info_hash)
        return found

    async def is_published_target(self, target: str) -> bool:
        asked = self._clock()
        if target in (await self.current()).targets:
            return True
        return target in (await self._read_after(asked)).targets
