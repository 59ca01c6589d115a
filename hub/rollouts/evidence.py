"""What the hub knows about one rollout's progress: members and results per stage.

Stage membership is computed with the agent's own functions (`agent.rollout_selection`)
from the enrolled devices of the rollout's groups, so the hub counts exactly the devices
that decide they are in. A device's latest result counts: `installed` as a success;
`reverted`, `revert-failed` and `failed` as failures; `not-ready`, `deferred` and
`superseded` (a newer version of the name was installed while it waited) not at all:
nothing was tried. Results stored before a resume after a halt no longer count, and
their devices are no longer members (they will not report again). Devices the rollout
holds (a flagged compatibility combination, hub/compat/hold.py) are members of no stage
and their results count for nothing: the rollout is judged on the devices it goes on
with. Health signals (regression.py): a member's latest result carrying them gives its
before window to the stand-in control and, when its latest counted result is
`installed`, its after window to the treatment; the control windows members not
installed sent (control_windows.py) are the concurrent control
(concurrent_control.py chooses).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from functools import lru_cache

from agent.rollout_selection import joining_stage, rollout_bucket
from agent.wire.health_signals import HealthSignals
from agent.wire.result import Outcome
from hub.rollouts.control_windows import control_windows
from hub.rollouts.controller import RolloutEvidence, StageEvidence
from hub.rollouts.store import RolloutRecord

SUCCESS = {Outcome.INSTALLED.value}
FAILURE = {Outcome.REVERTED.value, Outcome.REVERT_FAILED.value, Outcome.FAILED.value}


_bucket = lru_cache(maxsize=1 << 16)(rollout_bucket)
"""The controller counts every device of a rollout's groups each time results arrive:
remember the hashes (a device's bucket for a release never changes)."""


@dataclass(frozen=True)
class RolloutProgress:
    evidence: RolloutEvidence
    stages: tuple[StageEvidence, ...]
    """Every stage's own members and results (for `rollout status`)."""
    outside_stages: int
    """Audience devices no stage includes (below 100 % at the final stage)."""


def stage_membership(db: sqlite3.Connection, record: RolloutRecord) -> dict[str, int | None]:
    """Every accepted device of the rollout's audience and the stage it joins in (None:
    no stage includes it), as the agents decide it themselves."""
    entry = record.entry()
    audience = sorted(record.audience_groups)
    marks = ",".join("?" * len(audience))
    # Only devices of the rollout's groups read its document; a pilot device that has
    # moved to another group since is no longer in the audience.
    devices = db.execute(
        f"SELECT device_id, grp FROM devices WHERE status = 'accepted' AND "  # noqa: S608
        f"grp IN ({marks})",
        audience,
    ).fetchall()
    held = set(record.held_devices)
    return {
        device: joining_stage(entry, device, group, _bucket(device, record.release))
        for device, group in devices if device not in held
    }


def _signals(body: bytes) -> HealthSignals | None:
    """The health signals of a stored (verified at ingest) result body, if it has any."""
    data = json.loads(body).get("record", {}).get("signals")
    return None if data is None else HealthSignals.model_validate(data)


def gather_progress(db: sqlite3.Connection, record: RolloutRecord) -> RolloutProgress:
    joins = stage_membership(db, record)

    latest: dict[str, bool] = {}
    arrival: dict[str, int] = {}
    spent: set[str] = set()
    signals: dict[str, HealthSignals] = {}
    for row in db.execute(
        "SELECT rowid, device_id, outcome, body FROM results WHERE release = ? "
        "ORDER BY rowid",
        (record.release,),
    ):
        device = row["device_id"]
        if device not in joins:
            continue
        if row["rowid"] <= record.evidence_after:
            spent.add(device)
            continue
        if row["outcome"] in SUCCESS or row["outcome"] in FAILURE:
            latest[device] = row["outcome"] in SUCCESS
            arrival.setdefault(device, row["rowid"])
        measured = _signals(row["body"])
        if measured is not None:
            signals[device] = measured

    per_stage = []
    for index in range(len(record.plan.stages)):
        members = [d for d, stage in joins.items() if stage == index and d not in spent]
        outcomes = [latest[d] for d in members if d in latest]
        per_stage.append(StageEvidence(
            members=len(members),
            successes=sum(outcomes),
            failures=len(outcomes) - sum(outcomes),
        ))
    ordered = tuple(latest[d] for d in sorted(latest, key=arrival.__getitem__))
    evidence = RolloutEvidence(
        stages=record.plan.stages,
        current_stage=record.current_stage,
        stage_started_at=record.stage_started_at,
        outcomes=ordered,
        stage=per_stage[record.current_stage],
        treatment_signals=tuple(s.after for d, s in signals.items() if latest.get(d)),
        control_signals=tuple(s.before for s in signals.values()),
        concurrent_signals={
            device: tuple(windows)
            for device, windows in control_windows(db, record.release).items()
            if device in joins and not latest.get(device)},
    )
    outside = sum(1 for stage in joins.values() if stage is None)
    return RolloutProgress(evidence, tuple(per_stage), outside)
