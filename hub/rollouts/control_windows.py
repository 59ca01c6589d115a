"""Control windows the hub keeps: health signals devices not yet updated measured while
a rollout of a release declaring `[signals]` was active (agent/wire/control_signals.py),
per (release, device, window start), for the concurrent control of the regression test
(hub/rollouts/concurrent_control.py).

A window is taken only when everything about it holds, else nothing is stored and the
device is told why (ControlWindowRefusedError, a 422):

- an accepted device signed it (404, 403 otherwise);
- the release has an active rollout whose audience is the device's group;
- the device has not reported installing the release (its windows are treatment then);
- the window ended at most MAX_AGE before the hub's time and no later than MAX_SKEW after;
- it starts no earlier than the end of the device's latest window held for the release
  (less OVERLAP_TOLERANCE, for the seconds a start is rounded to): windows do not
  overlap, so a device cannot weigh more than its time;
- the device has fewer than MAX_WINDOWS_PER_DEVICE held for the release.

The same window again (same start) is no error and stores nothing: a retry.
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from agent.wire.control_signals import SignedControlWindow
from agent.wire.health_signals import SignalWindow
from hub.database import HubDatabase
from hub.errors import ControlWindowRefusedError, UnknownDeviceError
from hub.rollouts.store import ensure_rollout_schema, read_rollouts

SCHEMA = """
CREATE TABLE IF NOT EXISTS rollout_control_windows (
    release TEXT NOT NULL,
    device_id TEXT NOT NULL,
    started_at TEXT NOT NULL,
    ends_at TEXT NOT NULL,
    window TEXT NOT NULL,
    body BLOB NOT NULL,
    received_at TEXT NOT NULL,
    PRIMARY KEY (release, device_id, started_at)
);
"""

MAX_WINDOWS_PER_DEVICE = 2000
"""About 83 days of hourly windows: more than any rollout gives one device."""
MAX_AGE = timedelta(days=2)
MAX_SKEW = timedelta(minutes=5)
OVERLAP_TOLERANCE = timedelta(seconds=5)


@dataclass(frozen=True)
class ControlIngest:
    stored: bool


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def window_span(window: SignalWindow) -> tuple[datetime, datetime]:
    """(start, end) of a window; raises ValueError when `started_at` is no UTC time."""
    start = datetime.fromisoformat(window.started_at)
    if start.tzinfo is None:
        raise ValueError(f"started_at {window.started_at!r} has no time zone")
    return start, start + timedelta(seconds=window.seconds)


def ingest_control_window(database: HubDatabase, signed: SignedControlWindow,
                          now: datetime) -> ControlIngest:
    record = signed.record
    what = f"control window of {record.release} from {record.device_id}"
    device = database.device(record.device_id)
    if device is None or device.status != "accepted":
        raise UnknownDeviceError(f"{what}: no accepted device {record.device_id!r}")
    signed.verify(device.public_key)
    try:
        start, end = window_span(record.window)
    except ValueError as exc:
        raise ControlWindowRefusedError(f"{what}: {exc}") from None
    if end > now + MAX_SKEW or end < now - MAX_AGE:
        raise ControlWindowRefusedError(
            f"{what}: the window ending {_stamp(end)} is not between {MAX_AGE} before and "
            f"{MAX_SKEW} after the hub's time {_stamp(now)}")
    ensure_rollout_schema(database)
    with database.transaction() as db:
        active = [r for r in read_rollouts(db, record.release)
                  if r.state.value == "active" and device.group in r.audience_groups]
        if not active:
            raise ControlWindowRefusedError(
                f"{what}: no active rollout of {record.release} for group {device.group!r}")
        if db.execute("SELECT 1 FROM results WHERE release = ? AND device_id = ? AND "
                      "outcome = 'installed' LIMIT 1",
                      (record.release, record.device_id)).fetchone():
            raise ControlWindowRefusedError(
                f"{what}: the device has installed {record.release}; it is no control")
        held = db.execute(
            "SELECT count(*), max(ends_at), "
            "sum(started_at = ?) FROM rollout_control_windows WHERE release = ? AND "
            "device_id = ?", (_stamp(start), record.release, record.device_id)).fetchone()
        count, latest_end, same = held[0], held[1], held[2]
        if same:
            return ControlIngest(stored=False)
        if count >= MAX_WINDOWS_PER_DEVICE:
            raise ControlWindowRefusedError(
                f"{what}: {count} windows already held for this device "
                f"(at most {MAX_WINDOWS_PER_DEVICE})")
        if (latest_end is not None
                and start < datetime.fromisoformat(latest_end) - OVERLAP_TOLERANCE):
            raise ControlWindowRefusedError(
                f"{what}: the window starting {_stamp(start)} overlaps the one held ending "
                f"{latest_end}")
        db.execute(
            "INSERT INTO rollout_control_windows (release, device_id, started_at, ends_at, "
            "window, body, received_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (record.release, record.device_id, _stamp(start), _stamp(end),
             json.dumps(record.window.model_dump(mode="json")), signed.to_bytes(),
             _stamp(now)))
        db.execute("UPDATE devices SET last_seen = ? WHERE device_id = ? AND "
                   "(last_seen IS NULL OR last_seen < ?)",
                   (_stamp(now), record.device_id, _stamp(now)))
    return ControlIngest(stored=True)


def control_windows(db: sqlite3.Connection, release: str) -> dict[str, list[SignalWindow]]:
    """Every held control window of `release`, per device, oldest first."""
    windows: dict[str, list[SignalWindow]] = defaultdict(list)
    for row in db.execute("SELECT device_id, window FROM rollout_control_windows WHERE "
                          "release = ? ORDER BY device_id, started_at", (release,)):
        windows[row["device_id"]].append(_parsed(row["window"]))
    return dict(windows)


@lru_cache(maxsize=1 << 16)
def _parsed(text: str) -> SignalWindow:
    """The controller reads every window of a rollout at each pass; each is parsed once
    (windows are immutable once stored)."""
    return SignalWindow.model_validate_json(text)
