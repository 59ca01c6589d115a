"""Per-group compliance over time, for the console's charts.

`shares_over_time(facts, group, since, step)` is pure: at each instant `t` from `since`
to `facts.now` every `step`, the report is recomputed as it stood at `t` (releases
published by then, results finished by then, exceptions made by then and not yet
expired) and gives the share of in-scope (device, release) pairs of the group that are
compliant — installed within their deadline. None where nothing was in scope yet.

What the hub does not keep a history of is taken as it is now: group membership, the
policy, the rollouts' state and removed exceptions (only the current ones are known).
Devices count as online at every `t` (the hub keeps only the last contact); being
offline changes a row's reason, never whether it is compliant.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from hub.compliance.facts import ComplianceFacts, Filters
from hub.compliance.gather import gather_facts
from hub.compliance.report import compute_rows
from hub.database import HubDatabase

MAX_POINTS = 2000


def shares_over_time(facts: ComplianceFacts, group: str, since: datetime, step: timedelta
                     ) -> list[tuple[datetime, float | None]]:
    if step <= timedelta(0):
        raise ValueError(f"step {step} must be positive")
    points: list[tuple[datetime, float | None]] = []
    # Online at every step: last seen at the end, which no step is after.
    devices = [replace(d, last_seen=facts.now) for d in facts.devices if d.group == group]
    members = {device.device_id for device in devices}
    results = [r for r in facts.results if r.device_id in members]
    moment = since
    while moment <= facts.now and len(points) < MAX_POINTS:
        then = replace(
            facts, now=moment, devices=devices,
            releases=[r for r in facts.releases if r.published_at <= moment],
            results=[r for r in results if r.finished_at <= moment],
            exceptions=[e for e in facts.exceptions
                        if e.created_at is None or e.created_at <= moment])
        rows = [row for row in compute_rows(then, Filters(group=group)) if row["in_scope"]]
        compliant = sum(1 for row in rows if row["status"] == "compliant")
        points.append((moment, compliant / len(rows) if rows else None))
        moment += step
    return points


def compliance_over_time(database: HubDatabase, group: str, since: datetime,
                         step: timedelta, now: datetime | None = None
                         ) -> list[tuple[datetime, float | None]]:
    """`shares_over_time` over the hub database's facts."""
    return shares_over_time(gather_facts(database, "", now), group, since, step)
