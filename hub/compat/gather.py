"""Read what the compatibility matrix needs from the hub's database: each device's latest
counted result for a release, and the attributes of its latest inventory.

Works on a connection inside the caller's transaction, so the rollout controller reads
results, inventories and rollouts as of one instant (hub/rollouts/changes.py).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from agent.wire.result import Outcome
from hub.compat.matrix import Attribute, Observation
from hub.inventory.store import decode_packages

SUCCESS = {Outcome.INSTALLED.value}
FAILURE = {Outcome.REVERTED.value, Outcome.REVERT_FAILED.value, Outcome.FAILED.value}
"""As the rollout controller counts them (hub/rollouts/evidence.py); not-ready, deferred
and superseded tried nothing and do not count."""


@dataclass(frozen=True)
class ReleaseObservations:
    observations: list[Observation]
    without_inventory: list[str]


def latest_outcomes(db: sqlite3.Connection, release: str,
                    group: str | None = None) -> dict[str, str]:
    """device id → its latest counted outcome for `release` (removed devices left out)."""
    sql = ("SELECT r.device_id, r.outcome FROM results r JOIN devices d ON d.device_id = "
           "r.device_id WHERE r.release = ? AND d.status != 'removed'")
    params: tuple[Any, ...] = (release,)
    if group is not None:
        sql += " AND d.grp = ?"
        params += (group,)
    latest: dict[str, str] = {}
    for device_id, outcome in db.execute(sql + " ORDER BY r.rowid", params):
        if outcome in SUCCESS or outcome in FAILURE:
            latest[device_id] = outcome
    return latest


def device_attributes(db: sqlite3.Connection,
                      device_ids: Iterable[str]) -> dict[str, frozenset[Attribute]]:
    """The attributes of each of `device_ids` that has an inventory."""
    found: dict[str, frozenset[Attribute]] = {}
    for device_id in sorted(set(device_ids)):
        row = db.execute("SELECT summary, packages FROM inventory_latest WHERE device_id = ?",
                         (device_id,)).fetchone()
        if row is not None:
            found[device_id] = attributes_of(json.loads(row[0]), bytes(row[1]))
    return found


def attributes_of(summary: dict[str, Any], packages: bytes) -> frozenset[Attribute]:
    os_release = summary["os"]
    attributes = {
        Attribute("os", f"{os_release['id']} {os_release['version_id']}".strip() or "unknown"),
        Attribute("architecture", summary["architecture"] or "unknown"),
        Attribute("kernel", summary["kernel"] or "unknown"),
    }
    model = summary["hardware"].get("product_name", "")
    if model:
        attributes.add(Attribute("model", model))
    for name, version, _arch, _source, _source_version in decode_packages(packages):
        attributes.add(Attribute("package", name))
        attributes.add(Attribute("package-version", f"{name} {version}"))
    return frozenset(attributes)


def observe(db: sqlite3.Connection, release: str,
            group: str | None = None) -> ReleaseObservations:
    outcomes = latest_outcomes(db, release, group)
    attributes = device_attributes(db, outcomes)
    observations = [Observation(device, outcome, outcome in FAILURE, attributes[device])
                    for device, outcome in sorted(outcomes.items()) if device in attributes]
    return ReleaseObservations(observations,
                               sorted(d for d in outcomes if d not in attributes))
