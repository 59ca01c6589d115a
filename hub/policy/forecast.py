"""`meisitong-hub plan RELEASE`: when will each group reach 50 / 90 / 98 / 100 % installed?

The forecast replays, per group, what its agents will do, with the agents' own code:
each device's first eligible time comes from `agent.policy.plan_install` (windows in
their zones, jitter by device id, deadline, deferral, pause, blocklist), and the group's
disruption budget is played as K slots each held for `install_minutes`. A device that
finds the budget full asks again when a slot frees, and is re-planned then (its window
may have closed meanwhile). Devices not seen for `stale_days`, outside the rollout's
stage, or never eligible (blocked, paused) do not install; a threshold they keep out
of reach is reported as never.

Results already in count as they are: a device that reported `installed` is installed at
its time; one that reverted, failed or was superseded will not install again. Pilots are
in the first stage whatever their bucket. Devices of later stages join when their stage
is predicted to open: once the stage before it has its required results (min(N, its
members)) and its soak has passed, as the controller decides (hub/rollouts/controller.py;
an empty stage opens the next only after some result). A rollout advanced only by hand
leaves later stages at never, saying so.

The pure part (`forecast_group`) takes plain data and `now`; tests check it against a
MockClock run of real gates with the hub's real lease store.
"""

from __future__ import annotations

import heapq
import math
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from agent.policy import NO_POLICY, DeviceFacts, Policy, ReleaseFacts, Verdict, plan_install
from agent.rollout_selection import joining_stage, rollout_bucket
from agent.wire.release import Severity
from agent.wire.result import Outcome
from hub.database import DeviceRow, HubDatabase
from hub.policy.policies import group_policy
from hub.rollouts.changes import find_release
from hub.rollouts.store import RolloutRecord, ensure_rollout_schema, read_rollouts

THRESHOLDS = (50, 90, 98, 100)


@dataclass(frozen=True)
class FleetDevice:
    facts: DeviceFacts
    name: str = ""
    online: bool = True
    why_not: str = ""
    eligible_from: datetime | None = None
    """When its stage opens (None: now); a later stage's devices start later."""


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
            queue.append((max(now, device.eligible_from or now), index))
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


FINAL_FAILURES = {Outcome.REVERTED.value, Outcome.REVERT_FAILED.value, Outcome.FAILED.value,
                  Outcome.SUPERSEDED.value}


def forecast_release(database: HubDatabase, release_spec: str, now: datetime,
                     install_minutes: float = 10.0, stale_days: float = 14.0
                     ) -> dict[str, Any]:
    """The forecast for every rollout of the release (every group with devices, if it is
    not rolled out yet), as plain data for the CLI."""
    row = find_release(database, release_spec)
    target = row["target"]
    release = ReleaseFacts(target, row["name"], row["version"], Severity(row["severity"]),
                           row["category"], _time(row["published_at"]))
    ensure_rollout_schema(database)
    with database.transaction() as db:
        records = read_rollouts(db, release=target)
    latest: dict[str, sqlite3.Row] = {}
    for result in database.query(
            "SELECT device_id, outcome, finished_at FROM results WHERE release = ? "
            "ORDER BY rowid", (target,)):
        latest[result["device_id"]] = result
    fleet = [device for device in database.devices() if device.status == "accepted"]
    report: dict[str, Any] = {"release": target, "now": now.isoformat(),
                              "install_minutes": install_minutes, "groups": []}
    context = _Context(release, now, install_minutes, stale_days, latest)
    if records:
        for record in records:
            audience = [d for d in fleet if d.group in record.audience_groups]
            report["groups"].append(_forecast_rollout(database, record, audience, context))
    else:
        for group in sorted({device.group for device in fleet}):
            members = [d for d in fleet if d.group == group]
            report["groups"].append(_forecast_unrolled(database, group, members, context))
    return report


@dataclass(frozen=True)
class _Context:
    release: ReleaseFacts
    now: datetime
    install_minutes: float
    stale_days: float
    latest: dict[str, sqlite3.Row]


def _already(device: DeviceRow, context: _Context) -> tuple[datetime | None, str]:
    """(installed at, why it will not install) from what the hub already knows."""
    result = context.latest.get(device.device_id)
    if result is not None and result["outcome"] == Outcome.INSTALLED.value:
        return _time(result["finished_at"]), ""
    if result is not None and result["outcome"] in FINAL_FAILURES:
        return None, f"reported {result['outcome']}"
    seen = _time(device.last_seen) if device.last_seen else None
    if seen is None or context.now - seen > timedelta(days=context.stale_days):
        return None, f"not seen for {context.stale_days:g} days"
    return None, ""


def _forecast_unrolled(database: HubDatabase, group: str, members: list[DeviceRow],
                       context: _Context) -> dict[str, Any]:
    policy = group_policy(database, group) or NO_POLICY
    fleet = []
    done: dict[str, datetime] = {}
    for device in members:
        installed, why = _already(device, context)
        if installed is not None:
            done[device.device_id] = installed
            continue
        fleet.append(FleetDevice(DeviceFacts(device.device_id, device.labels), device.name,
                                 online=not why, why_not=why))
    result = forecast_group(group, policy, context.release, fleet, context.now,
                            context.install_minutes)
    result.devices = len(members)
    result.installed_at.update(done)
    return _group_report(group, "not rolled out", policy, result, members)


def _forecast_rollout(database: HubDatabase, record: RolloutRecord, audience: list[DeviceRow],
                      context: _Context) -> dict[str, Any]:
    policy = group_policy(database, record.group) or NO_POLICY
    entry = record.entry()
    state = str(record.state)
    stages = record.plan.stages
    done: dict[str, datetime] = {}
    never: dict[str, str] = {}
    by_stage: dict[int, list[DeviceRow]] = {index: [] for index in range(len(stages))}
    for device in audience:
        installed, why = _already(device, context)
        if installed is not None:
            done[device.device_id] = installed
        stage = joining_stage(entry, device.device_id, device.group,
                              rollout_bucket(device.device_id, record.release))
        if stage is None:
            if installed is None:
                never[device.device_id] = f"outside every stage (final {stages[-1]} %)"
            continue
        if installed is not None:
            by_stage[stage].append(device)
        elif why:
            never[device.device_id] = why
        elif state != "active":
            never[device.device_id] = f"rollout is {state}"
        else:
            by_stage[stage].append(device)

    rules = record.rules
    soak = timedelta(seconds=rules.soak_seconds)
    opens: datetime | None = context.now
    fleet: list[FleetDevice] = []
    result = GroupForecast(record.group, len(audience))
    for index in range(len(stages)):
        members = by_stage[index]
        waiting = [d for d in members if d.device_id not in done]
        if index > record.current_stage:
            opens = _next_opening(opens, result, by_stage[index - 1], done, record, rules, soak,
                                  index, context)
        if opens is None:
            why = (f"stage {index + 1} ({stages[index]} %) needs `rollout advance`"
                   if not rules.automatic else
                   f"stage {index + 1} ({stages[index]} %) is not predicted to open")
            never.update({d.device_id: why for d in waiting})
            continue
        fleet.extend(FleetDevice(DeviceFacts(d.device_id, d.labels), d.name,
                                 eligible_from=opens) for d in waiting)
        result = forecast_group(record.group, policy, context.release, fleet, context.now,
                                context.install_minutes)
    result.devices = len(audience)
    result.installed_at.update(done)
    result.never.update(never)
    return _group_report(record.group, state, policy, result, audience)


def _next_opening(opened: datetime | None, result: GroupForecast, previous: list[DeviceRow],
                  done: dict[str, datetime], record: RolloutRecord, rules: Any,
                  soak: timedelta, index: int, context: _Context) -> datetime | None:
    """When stage `index` opens, from the forecast of the stage before it."""
    if opened is None or not rules.automatic:
        return None
    if index - 1 == record.current_stage:
        opened = record.stage_started_at  # its soak counts from when it really opened
    times = sorted(t for d in previous
                   if (t := done.get(d.device_id) or result.installed_at.get(d.device_id)))
    required = min(rules.min_results, len(previous))
    if required == 0:
        any_result = bool(done) or bool(result.installed_at)
        return max(context.now, opened + soak) if any_result else None
    if len(times) < required:
        return None
    return max(context.now, opened + soak, times[required - 1])


def _group_report(group: str, state: str, policy: Policy, result: GroupForecast,
                  members: list[DeviceRow]) -> dict[str, Any]:
    names = {member.device_id: member.name for member in members}
    return {
        "group": group, "devices": result.devices, "rollout": state,
        "policy": "none" if policy is NO_POLICY else "set",
        "installed": sum(1 for d in result.installed_at if d in names),
        "reach": {str(p): (t.isoformat() if (t := result.reach(p)) else None)
                  for p in THRESHOLDS},
        "never": {names.get(d) or d: why for d, why in sorted(result.never.items())},
    }
