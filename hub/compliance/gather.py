"""The compliance facts from a hub database: releases, rollouts, accepted devices, every
result, group policies, admin exceptions. One query per table; the rest is pure
(hub/compliance/report.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from agent.policy import Policy
from hub.compliance.exceptions import read_exceptions
from hub.compliance.facts import (
    ComplianceFacts,
    DeviceFact,
    ReleaseFact,
    ResultFact,
    RolloutFact,
)
from hub.database import HubDatabase
from hub.devices.online_window import ONLINE_WITHIN_SECONDS
from hub.policy.policies import group_policy
from hub.rollouts.store import ensure_rollout_schema, parse_time, read_rollouts


def gather_facts(database: HubDatabase, hub: str, now: datetime | None = None,
                 offline_after_seconds: float = ONLINE_WITHIN_SECONDS) -> ComplianceFacts:
    # Whole seconds, as the report prints it: a verifier recomputing the report as of its
    # printed time must see the very instant the hub used.
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    releases = [ReleaseFact(row["target"], row["name"], row["version"], row["severity"],
                            row["category"], parse_time(row["published_at"]))
                for row in database.query("SELECT * FROM releases")]
    ensure_rollout_schema(database)
    with database.transaction() as db:
        records = read_rollouts(db)
    rollouts: dict[str, list[RolloutFact]] = {}
    for record in records:
        rollouts.setdefault(record.release, []).append(RolloutFact(record.group,
                                                                   record.entry()))
    devices = [DeviceFact(d.device_id, d.name, d.group, d.site,
                          parse_time(d.last_seen) if d.last_seen else None)
               for d in database.devices() if d.status == "accepted"]
    results = [ResultFact(row["device_id"], row["release"], row["outcome"], row["reason"],
                          parse_time(row["finished_at"]))
               for row in database.query(
                   "SELECT device_id, release, outcome, reason, finished_at FROM results")]
    policies: dict[str, Policy] = {}
    for group in sorted({device.group for device in devices}):
        policy = group_policy(database, group)
        if policy is not None:
            policies[group] = policy
    return ComplianceFacts(hub=hub, now=now, releases=releases, rollouts=rollouts,
                           devices=devices, results=results, policies=policies,
                           exceptions=read_exceptions(database),
                           offline_after_seconds=offline_after_seconds)
