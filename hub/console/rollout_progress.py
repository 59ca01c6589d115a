"""Where every device of a rollout stands, counted per stage: what the console's rollout
page shows and its live stream sends.

A stage's members are the devices that decide they are in it (hub/rollouts/evidence.py,
the agents' own functions), less those whose results a resume after a halt set aside
(as the controller counts them). Each member is in exactly one state:

- its result for the release, when it has one: `installed`, `reverted`, `revert-failed`,
  `failed`, `not-ready`, `deferred` or `superseded`. A result the controller counts
  (installed or a failure) outranks a later one it does not (not-ready, deferred), so
  installed + reverted + revert-failed + failed is what `rollout status` shows as
  successes and failures; otherwise the latest result wins;
- else `downloading` or `downloaded` when the hub's tracker has the device in one of the
  release's swarms with bytes left (downloading) or none (downloaded: the payload is
  there, the install and its result are still to come). Agents journal `downloading`
  but report only outcomes; their announces every tracker interval are the hub's view of
  a download in flight. The announce's `device` parameter is not signed, so these two
  counts are informational: nothing decides on them;
- else `pending`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from typing import Any

from agent.wire.result import Outcome
from hub.rollouts.evidence import FAILURE, SUCCESS, stage_membership
from hub.rollouts.store import RolloutRecord, iso
from hub.swarm.tracker import Swarms

PENDING = "pending"
DOWNLOADING = "downloading"
DOWNLOADED = "downloaded"
STATES: tuple[str, ...] = (
    PENDING, DOWNLOADING, DOWNLOADED, Outcome.INSTALLED.value, Outcome.REVERTED.value,
    Outcome.REVERT_FAILED.value, Outcome.FAILED.value, Outcome.NOT_READY.value,
    Outcome.DEFERRED.value, Outcome.SUPERSEDED.value,
)
"""Every state a stage counts, in the order the console shows them."""

SwarmView = Mapping[str, int]
"""Device id -> bytes it has left, for the devices in a release's swarms."""


def swarm_hashes(db: sqlite3.Connection, release: str) -> tuple[bytes, ...]:
    """The info-hashes a release's swarms are tracked under (v1, and v2 truncated to 20
    bytes as libtorrent announces it)."""
    row = db.execute("SELECT info_hash_v1, info_hash_v2 FROM releases WHERE target = ?",
                     (release,)).fetchone()
    if row is None:
        return ()
    hashes = [bytes.fromhex(row[0])]
    if row[1]:
        hashes.append(bytes.fromhex(row[1])[:20])
    return tuple(hashes)


def swarm_view(swarms: Swarms | None, hashes: tuple[bytes, ...]) -> dict[str, int]:
    """Who the tracker has in these swarms now, by device (peers that named none are left
    out). Reads the tracker's memory: call it in the event loop's thread."""
    view: dict[str, int] = {}
    if swarms is None:
        return view
    for info_hash in hashes:
        for peer in swarms.peers(info_hash):
            if peer.device is None or peer.is_hub or peer.left is None:
                continue
            view[peer.device] = min(peer.left, view.get(peer.device, peer.left))
    return view


def device_states(
    db: sqlite3.Connection, record: RolloutRecord, in_swarm: SwarmView
) -> dict[str, tuple[int | None, str]]:
    """Every audience device -> (its stage, None for none; its state)."""
    joins = stage_membership(db, record)
    counted: dict[str, str] = {}
    other: dict[str, str] = {}
    spent: set[str] = set()
    for rowid, device, outcome in db.execute(
        "SELECT rowid, device_id, outcome FROM results WHERE release = ? ORDER BY rowid",
        (record.release,),
    ):
        if device not in joins:
            continue
        if rowid <= record.evidence_after:
            spent.add(device)
        elif outcome in SUCCESS or outcome in FAILURE:
            counted[device] = outcome
        else:
            other[device] = outcome
    states: dict[str, tuple[int | None, str]] = {}
    for device, stage in joins.items():
        if device in spent:
            continue
        if device in counted:
            state = counted[device]
        elif device in other:
            state = other[device]
        elif device in in_swarm:
            state = DOWNLOADING if in_swarm[device] > 0 else DOWNLOADED
        else:
            state = PENDING
        states[device] = (stage, state)
    return states


def rollout_progress(
    db: sqlite3.Connection, record: RolloutRecord, in_swarm: SwarmView
) -> dict[str, Any]:
    """The rollout and its stages with a count for every state, as plain data."""
    states = device_states(db, record, in_swarm)
    stages = []
    for index, percent in enumerate(record.plan.stages):
        counts = dict.fromkeys(STATES, 0)
        members = 0
        for stage, state in states.values():
            if stage == index:
                counts[state] += 1
                members += 1
        stages.append({"index": index, "percent": percent, "members": members,
                       "current": index == record.current_stage, "counts": counts})
    return {
        "release": record.release,
        "group": record.group,
        "state": record.state.value,
        "aborted": record.aborted,
        "reason": record.reason,
        "current_stage": record.current_stage,
        "stage_percent": record.stage_percent,
        "stage_started_at": iso(record.stage_started_at),
        "started_at": record.started_at,
        "automatic": record.rules.automatic,
        "stages": stages,
        "outside_stages": sum(1 for stage, _ in states.values() if stage is None),
    }
