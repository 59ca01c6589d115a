"""The compliance report: one row per (device, release), summaries per group × severity.

Pure: `compute_report(facts, filters)` reads plain data (hub/compliance/facts.py) and
returns plain data (JSON-ready dicts), so the hub, the evidence verifier and a 10,000
device simulation compute exactly the same report.

Which rows: every accepted device of a group a release was rolled out to (the rollout's
group and its pilot groups), for every release published since `filters.since`.

Deadline: the release's signed `published_at` plus the device's group policy's
`deadline_hours` for the release's severity — what the agent itself acts on
(agent/policy/evaluator.py `deadline_of`); no deadline hours, no deadline.

Status of a row, first match wins:

- out of scope (not counted in the share, listed as exceptions):
  `excepted` (an admin's unexpired exception; once it expires the device is back in
  scope with its *original* deadline), `blocklisted` (the group's policy blocks it),
  `deferred` (the policy defers it and the deferral has not ended), `superseded` (a newer
  version of the name was installed first);
- in scope: `compliant` (installed by the deadline, or installed with no deadline),
  `late` (installed after it), `revert-failed`, `reverted`, `failed`, `not-ready` (the
  device's latest signed result), `offline` (not heard from for `offline_after_seconds`:
  "offline since"), `held` (the group's policy paused, the rollout paused or halted, or
  the device not in the rollout's current stage or held by the compatibility hold),
  `overdue` (deadline passed, nothing
  reported), `pending` (its deadline is still ahead, or there is none).

Every row that is neither `compliant` nor `pending` is an exception with its reason.
The share is compliant / in scope; `reachable_share` leaves out offline devices. Times
to install are hours from publication to the installed record's `finished_at`; p95 is
the nearest-rank 95th percentile.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from agent.policy import NO_POLICY, Policy
from agent.rollout_selection import joining_stage
from agent.wire.rollout import RolloutState
from hub.compliance.facts import (
    AdminException,
    ComplianceFacts,
    DeviceFact,
    Filters,
    ReleaseFact,
    ResultFact,
    RolloutFact,
)

OUT_OF_SCOPE = ("excepted", "blocklisted", "deferred", "superseded")
NOT_EXCEPTIONS = ("compliant", "pending")
FAILURE_OUTCOMES = ("revert-failed", "reverted", "failed", "not-ready")
ROW_FIELDS = ("group", "severity", "release", "name", "version", "device_id", "device",
              "site", "status", "in_scope", "published_at", "deadline", "installed_at",
              "hours_to_install", "reason", "exception_expires_at")


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat(timespec="seconds")


@dataclass(frozen=True)
class _GroupRules:
    deadline: datetime | None
    blocked: str | None
    deferred_until: datetime | None
    paused: bool


def _rules(policy: Policy, release: ReleaseFact) -> _GroupRules:
    hours = policy.deadline_hours.get(release.severity)  # type: ignore[call-overload]
    deadline = None if hours is None else release.published_at + timedelta(hours=hours)
    blocked = policy.blocklist.match(release.name, release.version, release.category)
    deferral = policy.deferral
    security = (release.severity in deferral.security_severities
                or release.category in deferral.security_categories)
    until = None if not deferral.days or security else (
        release.published_at + timedelta(days=deferral.days))
    return _GroupRules(deadline, blocked, until, policy.paused)


def _outcomes(results: list[ResultFact]) -> dict[tuple[str, str], tuple[datetime | None,
                                                                         ResultFact | None]]:
    """(device, release) -> (first installed time, latest record) from its records."""
    merged: dict[tuple[str, str], tuple[datetime | None, ResultFact | None]] = {}
    for result in results:
        key = (result.device_id, result.release)
        installed, latest = merged.get(key, (None, None))
        if result.outcome == "installed" and (installed is None
                                              or result.finished_at < installed):
            installed = result.finished_at
        if latest is None or result.finished_at >= latest.finished_at:
            latest = result
        merged[key] = (installed, latest)
    return merged


def _rollout_for(rollouts: list[RolloutFact], group: str) -> RolloutFact | None:
    """The rollout whose document this group's devices read: their own group's first."""
    own = [r for r in rollouts if r.group == group]
    if own:
        return own[0]
    return next((r for r in rollouts if group in r.entry.pilot_groups), None)


def _hold(rollout: RolloutFact, rules: _GroupRules, device: DeviceFact,
          release: str) -> str | None:
    if rules.paused:
        return "held: the group's policy is paused"
    entry = rollout.entry
    if entry.state is not RolloutState.ACTIVE:
        return f"held: rollout is {entry.state}" + (f" ({entry.reason})" if entry.reason else "")
    if device.device_id in entry.held_devices:
        return "held: its combination fails this release significantly more often " \
               "(compatibility hold; `meisitong-hub compat`, `rollout unhold`)"
    stage = joining_stage(entry, device.device_id, device.group)
    if stage is None or stage > entry.current_stage:
        return f"held: not in the rollout's current stage ({entry.stage_percent} %)"
    return None


def _status(device: DeviceFact, release: ReleaseFact, rules: _GroupRules,
            rollout: RolloutFact, installed: datetime | None, latest: ResultFact | None,
            exception: AdminException | None, facts: ComplianceFacts
            ) -> tuple[str, str]:
    now = facts.now
    if exception is not None and exception.expires_at > now:
        return "excepted", (f"excepted by {exception.created_by or 'an admin'} until "
                            f"{iso(exception.expires_at)}: {exception.reason}")
    if installed is not None:
        if rules.deadline is None or installed <= rules.deadline:
            return "compliant", ""
        late = (installed - rules.deadline).total_seconds() / 3600
        return "late", f"installed {late:.1f} h after the deadline"
    if rules.blocked:
        return "blocklisted", rules.blocked
    if rules.deferred_until is not None and rules.deferred_until > now:
        return "deferred", f"deferred by policy until {iso(rules.deferred_until)}"
    if latest is not None and latest.outcome == "superseded":
        return "superseded", latest.reason or "a newer version was installed first"
    if latest is not None and latest.outcome in FAILURE_OUTCOMES:
        said = f": {latest.reason}" if latest.reason else ""
        return latest.outcome, f"{latest.outcome} at {iso(latest.finished_at)}{said}"
    seen = device.last_seen
    if seen is None or (now - seen).total_seconds() > facts.offline_after_seconds:
        return "offline", f"offline since {iso(seen)}" if seen else "never heard from"
    hold = _hold(rollout, rules, device, release.target)
    if hold is not None:
        return "held", hold
    if rules.deadline is not None and rules.deadline <= now:
        return "overdue", f"overdue since {iso(rules.deadline)}: no result reported"
    return "pending", f"due {iso(rules.deadline)}" if rules.deadline else "no deadline"


def _wanted(release: ReleaseFact, filters: Filters) -> bool:
    if filters.severity is not None and release.severity != filters.severity:
        return False
    return filters.since is None or release.published_at >= filters.since


def compute_rows(facts: ComplianceFacts, filters: Filters = Filters()
                 ) -> list[dict[str, Any]]:
    """One row per (device, release) in scope of the filters; see the module docstring."""
    outcomes = _outcomes(facts.results)
    exceptions = {(e.device_id, e.release): e for e in facts.exceptions}
    by_group: dict[str, list[DeviceFact]] = defaultdict(list)
    for device in facts.devices:
        if filters.group is None or device.group == filters.group:
            by_group[device.group].append(device)
    rows: list[dict[str, Any]] = []
    for release in sorted(facts.releases, key=lambda r: (r.published_at, r.target)):
        rollouts = facts.rollouts.get(release.target, [])
        if not rollouts or not _wanted(release, filters):
            continue
        for group in sorted(by_group):
            rollout = _rollout_for(rollouts, group)
            if rollout is None:
                continue
            rules = _rules(facts.policies.get(group, NO_POLICY), release)
            published, deadline = iso(release.published_at), iso(rules.deadline)
            for device in by_group[group]:
                installed, latest = outcomes.get((device.device_id, release.target),
                                                 (None, None))
                exception = exceptions.get((device.device_id, release.target))
                status, reason = _status(device, release, rules, rollout, installed,
                                         latest, exception, facts)
                hours = None if installed is None else round(
                    (installed - release.published_at).total_seconds() / 3600, 3)
                rows.append({
                    "group": group, "severity": release.severity,
                    "release": release.target, "name": release.name,
                    "version": release.version, "device_id": device.device_id,
                    "device": device.name, "site": device.site, "status": status,
                    "in_scope": status not in OUT_OF_SCOPE,
                    "published_at": published,
                    "deadline": deadline, "installed_at": iso(installed),
                    "hours_to_install": hours, "reason": reason,
                    "exception_expires_at": iso(exception.expires_at) if exception else None,
                })
    return rows


def _p95(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def summarize(rows: list[dict[str, Any]], keys: tuple[str, ...]) -> list[dict[str, Any]]:
    """Counts, share, reachable share, mean and p95 hours per distinct `keys` value."""
    buckets: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        buckets[tuple(row[key] for key in keys)].append(row)
    summaries = []
    for key, members in sorted(buckets.items()):
        scoped = [row for row in members if row["in_scope"]]
        compliant = sum(1 for row in scoped if row["status"] == "compliant")
        offline = sum(1 for row in scoped if row["status"] == "offline")
        hours = [row["hours_to_install"] for row in scoped
                 if row["hours_to_install"] is not None]
        statuses: dict[str, int] = defaultdict(int)
        for row in members:
            statuses[row["status"]] += 1
        reachable = len(scoped) - offline
        summaries.append({
            **dict(zip(keys, key, strict=True)),
            "devices": len(members), "in_scope": len(scoped), "compliant": compliant,
            "share": round(compliant / len(scoped), 6) if scoped else None,
            "reachable_share": round(compliant / reachable, 6) if reachable else None,
            "mean_hours": round(sum(hours) / len(hours), 3) if hours else None,
            "p95_hours": _p95(hours),
            "statuses": dict(sorted(statuses.items())),
        })
    return summaries


def compute_report(facts: ComplianceFacts, filters: Filters = Filters()) -> dict[str, Any]:
    """The whole report as JSON-ready data: what every format renders."""
    rows = compute_rows(facts, filters)
    return {
        "hub": facts.hub,
        "generated_at": iso(facts.now),
        "filters": filters.as_dict(),
        "offline_after_seconds": facts.offline_after_seconds,
        "summary": summarize(rows, ("group", "severity")),
        "releases": summarize(rows, ("group", "severity", "release")),
        "exceptions": [row for row in rows if row["status"] not in NOT_EXCEPTIONS],
        "rows": rows,
    }


def percent(share: float | None) -> str:
    """How every format prints a share (the PDF test looks for these very strings)."""
    return "—" if share is None else f"{share * 100:.1f} %"
