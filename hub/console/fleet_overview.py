"""The fleet at a glance: devices per group and site, who was heard from lately, and what
needs an admin (the console's overview page and /console/api/overview).

"Online" means heard from within `online_seconds`, else stale (never heard from is
stale too): a device's last contact (`devices.last_seen`) is its latest signed
heartbeat, result or enrollment (hub/devices/presence.py). A healthy idle agent's only
contact is its heartbeat, every `[hub] heartbeat_interval` (900 s by default, 10 %
jitter); its static-file polls (every `poll_interval`) name no device and may not reach
the hub at all, so they cannot count. The window is the hub's one notion of online,
`[metrics] online_within` in hub.toml (two default heartbeats), so the console and
/metrics agree.

Alerts: devices whose latest result for a release is `revert-failed` (the device stops
installing until someone looks) or `not-ready`, and stale devices. Removed devices count
nowhere; pending ones (not yet accepted) are counted apart.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from typing import Any

from hub.devices.online_window import ONLINE_WITHIN_SECONDS
from hub.rollouts.store import parse_time

ONLINE_SECONDS = ONLINE_WITHIN_SECONDS

ALERT_OUTCOMES = ("revert-failed", "not-ready")


def _latest_results(db: sqlite3.Connection, outcomes: tuple[str, ...]) -> list[sqlite3.Row]:
    """The latest result of every (device, release) whose outcome is one of `outcomes`."""
    marks = ",".join("?" * len(outcomes))
    return db.execute(
        "SELECT r.device_id, d.name, d.grp, d.site, r.release, r.outcome, r.reason, "  # noqa: S608
        "r.finished_at FROM results r JOIN devices d ON d.device_id = r.device_id "
        "WHERE d.status = 'accepted' AND r.rowid = (SELECT max(rowid) FROM results l "
        "WHERE l.device_id = r.device_id AND l.release = r.release) "
        f"AND r.outcome IN ({marks}) ORDER BY r.finished_at DESC",
        outcomes,
    ).fetchall()


def fleet_overview(
    db: sqlite3.Connection,
    now: datetime | None = None,
    online_seconds: float = ONLINE_SECONDS,
) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    online_after = now - timedelta(seconds=online_seconds)
    groups: dict[str, dict[str, Any]] = {}
    sites: dict[str, dict[str, int]] = {}
    stale: list[dict[str, Any]] = []
    pending = 0
    total = online = 0
    for row in db.execute(
        "SELECT device_id, name, grp, site, status, last_seen FROM devices ORDER BY name"
    ):
        if row["status"] == "pending":
            pending += 1
        if row["status"] != "accepted":
            continue
        seen = parse_time(row["last_seen"]) if row["last_seen"] else None
        is_online = seen is not None and seen >= online_after
        total += 1
        online += is_online
        group = groups.setdefault(row["grp"], {"devices": 0, "online": 0, "sites": {}})
        group["devices"] += 1
        group["online"] += is_online
        group["sites"][row["site"]] = group["sites"].get(row["site"], 0) + 1
        site = sites.setdefault(row["site"], {"devices": 0, "online": 0})
        site["devices"] += 1
        site["online"] += is_online
        if not is_online:
            stale.append({"device_id": row["device_id"], "name": row["name"],
                          "group": row["grp"], "site": row["site"],
                          "last_seen": row["last_seen"]})
    alerts: dict[str, list[dict[str, Any]]] = {outcome: [] for outcome in ALERT_OUTCOMES}
    for row in _latest_results(db, ALERT_OUTCOMES):
        alerts[row["outcome"]].append({
            "device_id": row["device_id"], "name": row["name"], "group": row["grp"],
            "site": row["site"], "release": row["release"], "reason": row["reason"],
            "finished_at": row["finished_at"],
        })
    alerts["stale"] = stale
    return {
        "at": now.isoformat(timespec="seconds"),
        "online_seconds": online_seconds,
        "devices": total,
        "online": online,
        "pending_enrollment": pending,
        "groups": {name: groups[name] for name in sorted(groups)},
        "sites": {name: sites[name] for name in sorted(sites)},
        "alerts": alerts,
    }
