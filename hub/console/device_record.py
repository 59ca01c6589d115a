"""One device as the console shows it: what the hub enrolled, its results (newest first,
with the timings and byte counts its signed record carries), and where it stands in
every rollout its group sees. Its audit history and inventory come from hub/audit and
hub/inventory (hub/console/pages/devices.py)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from typing import Any

from hub.console.rollout_progress import SwarmView, device_states
from hub.rollouts.store import RolloutRecord, read_rollouts

MAX_RESULTS = 500


def device_row(db: sqlite3.Connection, device_id: str) -> dict[str, Any] | None:
    row = db.execute(
        "SELECT device_id, name, hostname, grp, site, labels, status, enrolled_at, last_seen "
        "FROM devices WHERE device_id = ?", (device_id,)).fetchone()
    if row is None:
        return None
    device = dict(row)
    device["group"] = device.pop("grp")
    device["labels"] = json.loads(device["labels"])
    return device


def device_list(db: sqlite3.Connection) -> list[dict[str, Any]]:
    """Every device with its latest result (any release)."""
    rows = db.execute(
        "SELECT d.device_id, d.name, d.hostname, d.grp, d.site, d.status, d.last_seen, "
        "r.release AS last_release, r.outcome AS last_outcome FROM devices d "
        "LEFT JOIN results r ON r.rowid = (SELECT max(rowid) FROM results l "
        "WHERE l.device_id = d.device_id) ORDER BY d.name").fetchall()
    return [{**dict(row), "group": row["grp"]} for row in rows]


def device_results(db: sqlite3.Connection, device_id: str,
                   limit: int = MAX_RESULTS) -> list[dict[str, Any]]:
    results = []
    for row in db.execute(
        "SELECT record_id, release, outcome, reason, started_at, finished_at, received_at, "
        "body FROM results WHERE device_id = ? ORDER BY rowid DESC LIMIT ?",
        (device_id, limit),
    ):
        record = json.loads(bytes(row["body"])).get("record", {})
        results.append({
            "record_id": row["record_id"], "release": row["release"],
            "outcome": row["outcome"], "reason": row["reason"],
            "started_at": row["started_at"], "finished_at": row["finished_at"],
            "received_at": row["received_at"], "timings": record.get("timings", {}),
            "bytes_from_peers": record.get("bytes_from_peers", 0),
            "bytes_from_hub": record.get("bytes_from_hub", 0),
            "agent_version": record.get("agent_version", ""),
        })
    return results


def rollouts_seen_by(db: sqlite3.Connection, group: str) -> list[RolloutRecord]:
    return [record for record in read_rollouts(db) if group in record.audience_groups]


def device_in_rollouts(db: sqlite3.Connection, device_id: str, records: list[RolloutRecord],
                       views: Mapping[str, SwarmView]) -> list[dict[str, Any]]:
    """For each rollout: the device's stage (None: no stage yet) and state."""
    placed = []
    for record in records:
        stage, state = device_states(db, record, views.get(record.release, {})).get(
            device_id, (None, "not a member"))
        placed.append({
            "release": record.release, "group": record.group, "rollout_state":
            record.state.value, "aborted": record.aborted, "stage": stage,
            "stage_percent": None if stage is None else record.plan.stages[stage],
            "current_stage": record.current_stage, "state": state,
        })
    return placed
