"""The fleet as counts the database holds: devices by status and presence, rollouts by
state and stage. Read at scrape time, so what another process changed (the admin's CLI
starting a rollout, removing a device) shows at the next scrape, and cached for a
second (`FleetStateCache`), so a burst of scrapes costs one read.

Each read is two grouped queries (no row per device reaches Python): cheap at 10,000
devices, and done in a worker thread so the event loop never waits on SQLite.

Presence follows hub/devices/presence.py: `devices.last_seen` is the hub's time of the
device's last heartbeat, result or enrollment; a device heard from within
`online_within` seconds is `online`, any other (never heard from included) `stale`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import trio

from hub.database import HubDatabase

CACHE_SECONDS = 1.0


@dataclass(frozen=True)
class FleetState:
    devices: dict[tuple[str, str], int] = field(default_factory=dict)
    """(status, presence) -> how many devices."""
    rollouts: dict[tuple[str, int], int] = field(default_factory=dict)
    """(state, stage percent) -> how many rollouts (one per release and group)."""


def read_fleet_state(database: HubDatabase, now: datetime, online_within: float) -> FleetState:
    since = (now - timedelta(seconds=online_within)).astimezone(UTC).isoformat(
        timespec="seconds")
    # last_seen is always written as UTC ISO 8601 to the second (hub.database.utc_now,
    # presence._stamp): compared as text, it compares as time.
    devices = {
        (row["status"], row["presence"]): row["n"] for row in database.query(
            "SELECT status, CASE WHEN last_seen >= ? THEN 'online' ELSE 'stale' END "
            "AS presence, COUNT(*) AS n FROM devices GROUP BY 1, 2", (since,))
    }
    rollouts = {
        (row["state"], row["stage_percent"]): row["n"] for row in database.query(
            "SELECT state, stage_percent, COUNT(*) AS n FROM rollouts GROUP BY 1, 2")
    }
    return FleetState(devices, rollouts)


class FleetStateCache:
    """The latest FleetState, read again when older than `max_age` seconds; concurrent
    scrapes wait for one read rather than each starting their own."""

    def __init__(self, database_path: Path, online_within: float,
                 max_age: float = CACHE_SECONDS,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.database_path = database_path
        self.online_within = online_within
        self.max_age = max_age
        self._now = now
        self._state: FleetState | None = None
        self._read_at = float("-inf")
        self._lock = trio.Lock()
        self.reads = 0
        """How many times the database was read (tests)."""

    def _read(self) -> FleetState:
        database = HubDatabase(self.database_path)
        try:
            return read_fleet_state(database, self._now(), self.online_within)
        finally:
            database.close()

    async def get(self) -> FleetState:
        async with self._lock:
            if self._state is None or trio.current_time() - self._read_at >= self.max_age:
                self._state = await trio.to_thread.run_sync(self._read)
                self._read_at = trio.current_time()
                self.reads += 1
            return self._state
