"""What `meisitong-hub rollout status` shows: each rollout's plan, every stage's members
and results, and what the controller would do now and why — as plain data."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from agent.wire.rollout import RolloutState
from hub.hub_dir import HubDir
from hub.rollouts.changes import rollout_records
from hub.rollouts.controller import decide, required_results, sequential_test
from hub.rollouts.evidence import gather_progress
from hub.rollouts.rules import HaltTest
from hub.rollouts.store import RolloutRecord, iso, open_rollout_database


def rollout_status(
    hub_dir: HubDir,
    release_spec: str | None = None,
    group: str | None = None,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    now = now or datetime.now(UTC)
    records = rollout_records(hub_dir, release_spec, group)
    database = open_rollout_database(hub_dir.database)
    try:
        with database.transaction() as db:
            return [_describe(record, gather_progress(db, record), now) for record in records]
    finally:
        database.close()


def _describe(record: RolloutRecord, progress: Any, now: datetime) -> dict[str, Any]:
    rules = record.rules
    decision = decide(progress.evidence, rules, now)
    if record.aborted:
        next_step = f"aborted: {record.reason}"
    elif record.state is RolloutState.HALTED:
        next_step = f"halted: {record.reason}"
    elif record.state is RolloutState.PAUSED:
        next_step = f"paused: {record.reason}"
    elif not rules.automatic:
        next_step = "driven by hand (no automatic rules)"
    else:
        next_step = decision.reason
    stages = []
    for index, (percent, stage) in enumerate(zip(record.plan.stages, progress.stages,
                                                 strict=True)):
        stages.append({
            "percent": percent,
            "members": stage.members,
            "required": required_results(rules, stage),
            "successes": stage.successes,
            "failures": stage.failures,
            "current": index == record.current_stage,
        })
    described: dict[str, Any] = {
        "release": record.release,
        "group": record.group,
        "state": record.state.value,
        "aborted": record.aborted,
        "reason": record.reason,
        "stages": stages,
        "current_stage": record.current_stage,
        "stage_percent": record.stage_percent,
        "stage_started_at": iso(record.stage_started_at),
        "started_at": record.started_at,
        "pilot_devices": list(record.plan.pilot_devices),
        "pilot_groups": list(record.plan.pilot_groups),
        "rules": rules.model_dump(mode="json"),
        "devices_outside_stages": progress.outside_stages,
        "held_devices": list(record.held_devices),
        "next": next_step,
    }
    if rules.halt_test is HaltTest.SPRT:
        sprt = sequential_test(progress.evidence.outcomes, rules)
        described["sequential_test"] = {
            "results": sprt.results,
            "failures": sprt.failures,
            "log_likelihood_ratio": round(sprt.log_likelihood_ratio, 3),
            "halt_at": round(sprt.halt_boundary, 3),
            "acceptable_failure_rate": round(rules.acceptable_failure_rate, 6),
            "unacceptable_failure_rate": round(rules.unacceptable_failure_rate, 6),
        }
    return described
