"""The controller's compatibility hold: which devices a rollout should go on without.

For a rollout whose plan opts in (`RolloutRules.hold_flagged`), at every controller pass
and before its halt rules: the release's compatibility matrix over every device that
reported it (all groups: a model that breaks in one group breaks in another), and for
each flagged combination the devices of the rollout's audience that have any of its
attribute values — among the devices that reported, those values pick the same devices,
so the evidence cannot tell which of them is the cause, and a device with any one is
held — unless already held, released from a hold by an admin (`rollout unhold`), or
the release installed on it. Holding a device that
failed keeps it from trying again; holding one that has not tried yet is the point.

The caller (hub/rollouts/changes.py) computes the holds in a read transaction (decoding
1,000 inventories of 3,000 packages takes seconds; result ingestion must not wait for it
behind the write lock), then writes those not yet held, the audit entry with these
figures, and the signed documents in one write transaction. Holds only grow, so figures
a moment old are still evidence for the holds they justify.

It runs when due (`HoldSchedule`): when a failure of the release arrived since the last
check (failures are what flags are made of), else at most every `RECHECK_SECONDS` (new
successes elsewhere sharpen a contrast too, more slowly; new devices may join a flagged
combination).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from hub.compat.gather import FAILURE, device_attributes, latest_outcomes, observe, paused_gc
from hub.compat.matrix import METHOD, Combination, CompatSettings, analyse
from hub.rollouts.evidence import stage_membership
from hub.rollouts.holds import released_devices
from hub.rollouts.store import RolloutRecord


@dataclass(frozen=True)
class Hold:
    combination: Combination
    devices: tuple[str, ...]
    """Audience devices newly held for it."""

    def figures(self, settings: CompatSettings) -> dict[str, Any]:
        """What the audit entry says: the combination, its counts, rates and p-values."""
        c = self.combination
        return {
            "attributes": [str(a) for a in c.attributes],
            "devices_reported": len(c.devices), "failures": c.failures,
            "failure_rate": round(c.rate, 4), "outcomes": dict(c.outcomes),
            "rest_devices": c.rest_devices, "rest_failures": c.rest_failures,
            "rest_failure_rate": round(c.rest_rate, 4),
            "p_value": c.p_value, "adjusted_p": c.adjusted_p, "alpha": settings.alpha,
            "min_devices": settings.min_devices, "min_failures": settings.min_failures,
            "method": METHOD, "held_devices": list(self.devices),
        }

    def reason(self) -> str:
        c = self.combination
        names = ", ".join(str(a) for a in c.attributes[:3])
        more = f" (+{len(c.attributes) - 3} more)" if len(c.attributes) > 3 else ""
        return (f"held for {len(self.devices)} device(s) with {names}{more}: {c.failures} of "
                f"{len(c.devices)} failed ({c.rate:.0%}) vs {c.rest_failures} of "
                f"{c.rest_devices} elsewhere ({c.rest_rate:.0%}); Fisher p = "
                f"{c.p_value:.3g}, Holm-adjusted {c.adjusted_p:.3g}")


def new_holds(db: sqlite3.Connection, record: RolloutRecord,
              settings: CompatSettings = CompatSettings()) -> list[Hold]:
    """The holds the rollout lacks, one per flagged combination that picks a device."""
    with paused_gc():
        observed = observe(db, record.release)
        flagged = analyse(observed.observations, settings).flagged
        if not flagged:
            return []
        audience = stage_membership(db, record)  # held devices already left out
        installed = {device for device, outcome in
                     latest_outcomes(db, record.release).items() if outcome == "installed"}
        released = released_devices(db, record.release, record.group)
        candidates = device_attributes(db, (d for d in audience
                                            if d not in installed and d not in released))
    holds: list[Hold] = []
    taken: set[str] = set()
    for combination in flagged:
        wanted = set(combination.attributes)
        devices = tuple(sorted(device for device, attributes in candidates.items()
                               if device not in taken and wanted & attributes))
        if devices:
            holds.append(Hold(combination, devices))
            taken.update(devices)
    return holds


RECHECK_SECONDS = 60


@dataclass
class HoldSchedule:
    """When each rollout's hold check last ran and which failure it had seen last; one
    per hub process (module-level `SCHEDULE`), keyed by database path and rollout."""

    last: dict[tuple[str, str, str], tuple[int, datetime]] = field(default_factory=dict)

    def due(self, db: sqlite3.Connection, key: tuple[str, str, str], release: str,
            now: datetime) -> int | None:
        """The failure watermark to record if a check is due now, else None."""
        marks = ",".join("?" * len(FAILURE))
        newest = db.execute(
            f"SELECT coalesce(max(rowid), 0) FROM results WHERE release = ? "  # noqa: S608
            f"AND outcome IN ({marks})", (release, *sorted(FAILURE))).fetchone()[0]
        seen = self.last.get(key)
        if seen is None or newest != seen[0] or now >= seen[1] + timedelta(
                seconds=RECHECK_SECONDS):
            return int(newest)
        return None

    def checked(self, key: tuple[str, str, str], watermark: int, now: datetime) -> None:
        self.last[key] = (watermark, now)


SCHEDULE = HoldSchedule()
