"""Read what the compatibility matrix needs from the hub's database: each device's latest
counted result for a release, and the attributes of its latest inventory.

Works on a connection inside the caller's transaction, so the rollout controller reads
results, inventories and rollouts as of one instant (hub/rollouts/changes.py).
"""

from __future__ import annotations

import gc
import json
import sqlite3
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from agent.wire.result import Outcome
from hub.compat.matrix import Observation

SUCCESS = {Outcome.INSTALLED.value}
FAILURE = {Outcome.REVERTED.value, Outcome.REVERT_FAILED.value, Outcome.FAILED.value}
"""As the rollout controller counts them (hub/rollouts/evidence.py); not-ready, deferred
and superseded tried nothing and do not count."""


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while millions of (kind, value) tuples are
    built (1,000 devices x 3,000 packages): every tuple allocated counts towards a
    collection that then walks all the live ones, which made gathering 7x slower
    (measured: 21.6 s against 3.2 s). Tuples of strings form no cycles, so nothing is
    left for it; the previous state is restored."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


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
                      device_ids: Iterable[str]) -> dict[str, frozenset[tuple[str, str]]]:
    """The attributes of each of `device_ids` that has an inventory."""
    found: dict[str, frozenset[tuple[str, str]]] = {}
    for device_id in sorted(set(device_ids)):
        row = db.execute("SELECT summary, packages FROM inventory_latest WHERE device_id = ?",
                         (device_id,)).fetchone()
        if row is not None:
            found[device_id] = attributes_of(json.loads(row[0]), bytes(row[1]))
    return found


def attributes_of(summary: dict[str, Any], packages: bytes) -> frozenset[tuple[str, str]]:
    """(kind, value) pairs as plain tuples (equal to `Attribute`s): a device has
    thousands, and a tuple is what hashes fastest."""
    os_release = summary["os"]
    attributes = {
        ("os", f"{os_release['id']} {os_release['version_id']}".strip() or "unknown"),
        ("architecture", summary["architecture"] or "unknown"),
        ("kernel", summary["kernel"] or "unknown"),
    }
    model = summary["hardware"].get("product_name", "")
    if model:
        attributes.add(("model", model))
    rows = json.loads(zlib.decompress(packages))  # hub.inventory.store's encoding
    attributes.update([("package", row[0]) for row in rows])
    attributes.update([("package-version", f"{row[0]} {row[1]}") for row in rows])
    return frozenset(attributes)


def observe(db: sqlite3.Connection, release: str,
            group: str | None = None) -> ReleaseObservations:
    outcomes = latest_outcomes(db, release, group)
    attributes = device_attributes(db, outcomes)
    observations = [Observation(device, outcome, outcome in FAILURE, attributes[device])
                    for device, outcome in sorted(outcomes.items()) if device in attributes]
    return ReleaseObservations(observations,
                               sorted(d for d in outcomes if d not in attributes))
