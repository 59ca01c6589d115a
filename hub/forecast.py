"""`meisitong-hub plan RELEASE`: when will each group reach 50 / 90 / 98 / 100 % installed?

The forecast replays, per group, what its agents will do, with the agents' own code:
each device's first eligible time comes from `agent.policy.plan_install` (windows in
their zones, jitter by device id, deadline, deferral, pause, blocklist), and the group's
disruption budget is played as K slots each held for `install_minutes`. A device that
finds the budget full asks again when a slot frees, and is re-planned then (its window
may have closed meanwhile). Devices not seen for `stale_days`, outside the rollout's
stage, or never eligible (blocked, paused) do not install; a threshold they keep out
of reach is reported as never.

The pure part (`forecast_group`) takes plain data and `now`; tests check it against a
MockClock run of real gates with the hub's real lease store.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from agent.policy import NO_POLICY, DeviceFacts, Policy, ReleaseFacts, Verdict, plan_install
from agent.rollout_selection import rollout_bucket
from agent.wire.release import Severity
from hub.database import HubDatabase
from hub.policies import group_policy
from hub.rollouts import find_release

THRESHOLDS = (50, 90, 98, 100)


@dataclass(frozen=True)
class FleetDevice:
    facts: DeviceFacts
    name: str = ""
    online: bool = True
    why_not: str = ""


@dataclass
class GroupForecast:
    group: str
    devices: int
    installed_at: dict[str, datetime] = field(default_factory=dict)
    never: dict[str, str] = field(default_factory=dict)

    def reach(self, percent: int) -> datetime | None:
        """When `percent` % of the group's devices have installed, or None (never)."""
        need = math.ceil(self.devices * percent / 100)
        times = sorted(self.installed_at.values())
        if need == 0:
            return None if not times else times[0]
        return times[need - 1] if len(times) >= need else None


def _scope(policy: Policy, device: DeviceFacts) -> str:
    label = policy.disruption.per_label if policy.disruption else None
    return device.labels.get(label, "") if label else ""


def forecast_group(group: str, policy: Policy, release: ReleaseFacts,
                   devices: list[FleetDevice], now: datetime,
                   install_minutes: float = 10.0) -> GroupForecast:
    """Play the group's devices forward from `now` (see the module docstring)."""
    result = GroupForecast(group, len(devices))
    duration = timedelta(minutes=install_minutes)
    limit = policy.disruption.max_concurrent if policy.disruption else None
    busy: dict[str, list[datetime]] = {}
    queue: list[tuple[datetime, int]] = []
    for index, device in enumerate(devices):
        if not device.online:
            result.never[device.facts.device_id] = device.why_not or "offline"
        else:
            queue.append((now, index))
    heapq.heapify(queue)
    while queue:
        at, index = heapq.heappop(queue)
        facts = devices[index].facts
        plan = plan_install(policy, release, facts, at)
        if plan.verdict in (Verdict.BLOCKED, Verdict.PAUSED):
            result.never[facts.device_id] = plan.reason
            continue
        if plan.verdict is Verdict.WAIT:
            assert plan.at is not None
            heapq.heappush(queue, (plan.at, index))
            continue
        slots = busy.setdefault(_scope(policy, facts), [])
        slots[:] = [until for until in slots if until > at]
        if limit is not None and len(slots) >= limit:
            heapq.heappush(queue, (min(slots), index))
            continue
        slots.append(at + duration)
        result.installed_at[facts.device_id] = at + duration
    return result


def _time(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def forecast_release(database: HubDatabase, release_spec: str, now: datetime,
                     install_minutes: float = 10.0, stale_days: float = 14.0
                     ) -> dict[str, Any]:
    """The forecast for every group the release is rolled out to (every group with
    devices, if it is not rolled out yet), as plain data for the CLI."""
    row = find_release(database, release_spec)
    release = ReleaseFacts(row["target"], row["name"], row["version"], Severity(row["severity"]),
                           row["category"], _time(row["published_at"]))
    stages = {r["grp"]: (r["state"], r["stage_percent"]) for r in database.query(
        "SELECT grp, state, stage_percent FROM rollouts WHERE release = ?", (row["target"],))}
    fleet = [device for device in database.devices() if device.status == "accepted"]
    groups = sorted(stages) or sorted({device.group for device in fleet})
    report: dict[str, Any] = {"release": row["target"], "now": now.isoformat(),
                              "install_minutes": install_minutes, "groups": []}
    for group in groups:
        state, percent = stages.get(group, ("not rolled out", 100))
        policy = group_policy(database, group) or NO_POLICY
        members = []
        for device in (d for d in fleet if d.group == group):
            facts = DeviceFacts(device.device_id, device.labels)
            seen = _time(device.last_seen) if device.last_seen else None
            why = ""
            if seen is None or now - seen > timedelta(days=stale_days):
                why = f"not seen for {stale_days:g} days"
            elif state not in ("active", "not rolled out"):
                why = f"rollout is {state}"
            elif rollout_bucket(device.device_id, row["target"]) >= percent:
                why = f"not in the rollout's stage ({percent} %)"
            members.append(FleetDevice(facts, device.name, online=not why, why_not=why))
        result = forecast_group(group, policy, release, members, now, install_minutes)
        names = {member.facts.device_id: member.name for member in members}
        report["groups"].append({
            "group": group, "devices": result.devices, "rollout": state,
            "policy": "none" if policy is NO_POLICY else "set",
            "reach": {str(p): (t.isoformat() if (t := result.reach(p)) else None)
                      for p in THRESHOLDS},
            "never": {names[d] or d: why for d, why in sorted(result.never.items())},
        })
    return report
