"""Live rollout progress for the console: one watcher of the database for every viewer.

Results reach the hub's database from this process (the device API) and from others
sharing the SQLite file (a CLI, a second hub). `PRAGMA data_version` on one connection
of ours changes whenever any other connection commits, and costs no table read, so one
task asks it every `POLL_SECONDS` while someone watches and sleeps otherwise: an idle hub
with no console open pays nothing. When it changes, or when the tracker's view of a
watched release's swarms changes (`downloading`: hub/console/rollout_progress.py), the
task recomputes each watched rollout once, whatever the number of viewers, and hands the
new progress to every viewer of that rollout whose copy differs.

Viewers never block the watcher: each keeps only the latest progress offered to it and
an event; a slow client skips intermediate states and gets the newest.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import trio

from hub.console.rollout_progress import SwarmView, rollout_progress, swarm_hashes, swarm_view
from hub.database import HubDatabase
from hub.rollouts.store import (
    ensure_rollout_schema,
    open_rollout_database,
    read_rollout,
    read_rollouts,
)
from hub.swarm.tracker import Swarms

log = logging.getLogger(__name__)

POLL_SECONDS = 0.2
KEEPALIVE_SECONDS = 15.0
"""An SSE comment this often keeps proxies from closing a quiet stream."""

RolloutKey = tuple[str, str]
"""(release target, group)."""
EVERY_ROLLOUT: RolloutKey = ("", "")
"""The key of the rollouts list: its progress is `{"rollouts": [every rollout's]}`."""

Progress = dict[str, Any]


class Viewer:
    """One console client's stream: the latest progress offered to it, once each."""

    def __init__(self) -> None:
        self.latest: Progress | None = None
        self._offered = trio.Event()

    def offer(self, progress: Progress) -> None:
        self.latest = progress
        self._offered.set()

    async def next(self) -> Progress:
        """The next progress offered since the last call (waits for one)."""
        await self._offered.wait()
        self._offered = trio.Event()
        assert self.latest is not None
        return self.latest


class LiveRollouts:
    """Watches the database for viewers of rollouts; run `run` in the serving nursery."""

    def __init__(self, database_path: Path, swarms: Swarms | None = None,
                 poll_seconds: float = POLL_SECONDS) -> None:
        self.database_path = database_path
        self.swarms = swarms
        self.poll_seconds = poll_seconds
        self._viewers: dict[RolloutKey, set[Viewer]] = {}
        self._progress: dict[RolloutKey, Progress] = {}
        self._views: dict[RolloutKey, Any] = {}
        self._every_release: tuple[str, ...] = ()
        self._hashes: dict[str, tuple[bytes, ...]] = {}
        self._wake = trio.Event()
        self._db: sqlite3.Connection | None = None
        self._data_version: int | None = None
        self.running = False
        """True while `run` runs: without it no stream would ever get anything."""
        self.recomputed = 0
        """How many times a rollout's progress was computed (tests check the fan-out)."""

    @contextmanager
    def watch(self, release: str, group: str) -> Iterator[Viewer]:
        """A viewer of one rollout (EVERY_ROLLOUT: of them all) for as long as the block
        runs; its first progress comes at once if another viewer's is current, else
        within one poll."""
        key = (release, group)
        viewer = Viewer()
        self._viewers.setdefault(key, set()).add(viewer)
        if key in self._progress:
            viewer.offer(self._progress[key])
        self._wake.set()
        try:
            yield viewer
        finally:
            viewers = self._viewers.get(key, set())
            viewers.discard(viewer)
            if not viewers:
                self._viewers.pop(key, None)
                self._progress.pop(key, None)
                self._views.pop(key, None)

    async def current(self, key: RolloutKey | None = None) -> list[Progress]:
        """Fresh progress of one rollout (none if there is no such rollout), or of every
        rollout, read on a connection of its own (pages and the JSON API)."""

        def rollouts() -> list[RolloutKey]:
            database = open_rollout_database(self.database_path)
            try:
                with database.read_transaction() as db:
                    records = read_rollouts(db) if key is None else read_rollouts(db, *key)
                    for record in records:
                        if record.release not in self._hashes:
                            self._hashes[record.release] = swarm_hashes(db, record.release)
                    return [(record.release, record.group) for record in records]
            finally:
                database.close()

        keys = await trio.to_thread.run_sync(rollouts)
        views = {k: swarm_view(self.swarms, self._hashes.get(k[0], ())) for k in keys}

        def progress() -> list[Progress]:
            database = open_rollout_database(self.database_path)
            try:
                with database.read_transaction() as db:
                    return [progress_of(db, release, group, views[(release, group)])
                            for release, group in keys]
            finally:
                database.close()

        found = await trio.to_thread.run_sync(progress)
        return [p for p in found if not p.get("gone")]

    @property
    def viewers(self) -> int:
        return sum(len(viewers) for viewers in self._viewers.values())

    async def run(self) -> None:
        """Poll while anyone watches; a failing poll is logged and tried again."""
        self.running = True
        try:
            while True:
                if not self._viewers:
                    await self._wake.wait()
                self._wake = trio.Event()
                try:
                    await self._poll()
                except Exception:  # noqa: BLE001 - a locked database must not end serve
                    log.exception("console: could not read rollout progress; trying again")
                with trio.move_on_after(self.poll_seconds):
                    await self._wake.wait()
        finally:
            self.running = False
            if self._db is not None:
                self._db.close()
                self._db = None

    async def _poll(self) -> None:
        keys = list(self._viewers)
        views = {key: self._view(key) for key in keys}
        stale = [key for key in keys
                 if key not in self._progress or views[key] != self._views.get(key)]
        computed = await trio.to_thread.run_sync(self._read, keys, stale, views)
        for key, progress in computed.items():
            self._views[key] = views[key]
            if key not in self._viewers or progress == self._progress.get(key):
                continue
            self._progress[key] = progress
            for viewer in self._viewers[key]:
                viewer.offer(progress)

    def _view(self, key: RolloutKey) -> Any:
        """The tracker's view of the key's release (of every release, for the list)."""
        if key == EVERY_ROLLOUT:
            return {release: swarm_view(self.swarms, self._hashes.get(release, ()))
                    for release in self._every_release}
        return swarm_view(self.swarms, self._hashes.get(key[0], ()))

    # -- in a worker thread ---------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            database = HubDatabase(self.database_path)
            try:
                ensure_rollout_schema(database)
            finally:
                database.close()
            # Used from one worker thread at a time (this task awaits each read).
            self._db = sqlite3.connect(self.database_path, isolation_level=None,
                                       check_same_thread=False, timeout=5)
            self._db.row_factory = sqlite3.Row
        return self._db

    def _read(self, keys: list[RolloutKey], stale: list[RolloutKey],
              views: dict[RolloutKey, Any]) -> dict[RolloutKey, Progress]:
        db = self._connection()
        version = db.execute("PRAGMA data_version").fetchone()[0]
        changed = version != self._data_version
        self._data_version = version
        wanted = keys if changed else stale
        if not wanted:
            return {}
        db.execute("BEGIN")  # one consistent read of rollouts and results
        try:
            out = {}
            for release, group in wanted:
                if (release, group) == EVERY_ROLLOUT:
                    out[EVERY_ROLLOUT] = self._compute_every(db, views[EVERY_ROLLOUT])
                    continue
                if release not in self._hashes:
                    self._hashes[release] = swarm_hashes(db, release)
                out[(release, group)] = self.compute(db, release, group, views[(release, group)])
            return out
        finally:
            db.execute("COMMIT")

    def compute(self, db: sqlite3.Connection, release: str, group: str,
                view: SwarmView) -> Progress:
        self.recomputed += 1
        return progress_of(db, release, group, view)

    def _compute_every(self, db: sqlite3.Connection, views: dict[str, SwarmView]) -> Progress:
        self.recomputed += 1
        records = read_rollouts(db)
        for record in records:
            if record.release not in self._hashes:
                self._hashes[record.release] = swarm_hashes(db, record.release)
        # The next poll reads the tracker for releases that appeared in this one.
        self._every_release = tuple(sorted({record.release for record in records}))
        return {"rollouts": [rollout_progress(db, record, views.get(record.release, {}))
                             for record in records]}


def progress_of(db: sqlite3.Connection, release: str, group: str, view: SwarmView) -> Progress:
    record = read_rollout(db, release, group)
    if record is None:
        return {"release": release, "group": group, "gone": True}
    return rollout_progress(db, record, view)


async def event_stream(
    live: LiveRollouts,
    release: str,
    group: str,
    alive: Callable[[], Awaitable[bool]],
    check_seconds: float = 5.0,
    keepalive: float = KEEPALIVE_SECONDS,
) -> AsyncIterator[str]:
    """Server-sent events for one rollout: `event: progress` with the JSON progress each
    time it changes (the first at once), a comment line when `keepalive` seconds passed
    without one. Every `check_seconds` `alive()` is asked, and the stream ends once it
    says False (the viewer's session ended)."""
    with live.watch(release, group) as viewer:
        yield "retry: 2000\n\n"
        quiet_since = trio.current_time()
        while True:
            progress = None
            with trio.move_on_after(check_seconds):
                progress = await viewer.next()
            if progress is not None:
                quiet_since = trio.current_time()
                yield f"event: progress\ndata: {json.dumps(progress, sort_keys=True)}\n\n"
                continue
            if not await alive():
                return
            if trio.current_time() - quiet_since >= keepalive:
                quiet_since = trio.current_time()
                yield ": keepalive\n\n"
