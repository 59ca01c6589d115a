"""When may this device act on a release? Pure functions of a policy, the release's
signed facts, the device, and `now`; the daemon, the gate and the hub's forecast all
ask these same questions, so what `meisitong-hub plan` predicts is what agents do.

Rules, in order:
1. A blocklisted release never installs; a paused group starts nothing new.
2. A release that is not a security update (by severity or category) is deferred:
   nothing happens before publication + `deferral.days` (it is not even downloaded).
3. It installs at the first moment, after that, inside a maintenance window, moved
   into the window by a per-device jitter so a site does not start all at once.
   A policy without windows allows any time.
4. Past its deadline (publication + `deadline_hours[severity]`) it installs at once,
   window or not. When no window opens before the deadline it starts DEADLINE_LEAD
   ahead of it (or at once, if that is past), so the install is done by the deadline
   the compliance report measures, not begun at it.
5. A reboot waits for a window, even past the deadline, unless `reboot = "deadline"`.

Times are counted from `published_at`, which the offline release key signs: a
compromised hub can neither make a deadline pass early nor shorten a deferral.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from agent.policy.model import Policy
from agent.policy.windows import load_zone, occurrences
from agent.wire.release import ReleaseInfo, Severity

SEARCH_DAYS = 15
"""Every weekly window opens within a week; two weeks cover any jitter and deferral end."""


class Verdict(StrEnum):
    NOW = "now"
    WAIT = "wait"
    PAUSED = "paused"
    BLOCKED = "blocked"


@dataclass(frozen=True)
class ReleaseFacts:
    release: str
    name: str
    version: str
    severity: Severity
    category: str
    published_at: datetime

    @classmethod
    def from_info(cls, release: str, info: ReleaseInfo) -> ReleaseFacts:
        published = datetime.fromisoformat(info.published_at)
        return cls(release, info.manifest.name, info.manifest.version, info.manifest.severity,
                   info.manifest.category, published)


@dataclass(frozen=True)
class DeviceFacts:
    device_id: str
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Plan:
    """The answer: act `now`, `wait` until `at`, or never under this policy (`paused`,
    `blocked`). `start_download` is False while the release is deferred."""

    verdict: Verdict
    reason: str
    at: datetime | None
    zone: str
    deadline: datetime | None = None
    start_download: bool = True

    def describe(self, now: datetime) -> str:
        """`next: Sun 02:13 Europe/Berlin (window 'weekend'), deadline Tue 09:00`."""
        deadline = f", deadline {_short(self.deadline, self.zone, now)}" if self.deadline else ""
        if self.verdict is Verdict.NOW:
            return f"now ({self.reason}){deadline}"
        if self.at is None:
            return f"{self.verdict.value}: {self.reason}"
        return f"next: {_short(self.at, self.zone, now)} {self.zone} ({self.reason}){deadline}"


def _short(when: datetime, zone: str, now: datetime) -> str:
    local = when.astimezone(load_zone(zone))
    if abs(when - now) < timedelta(days=6):
        return local.strftime("%a %H:%M")
    return local.strftime("%a %Y-%m-%d %H:%M")


def is_security(policy: Policy, release: ReleaseFacts) -> bool:
    return (release.severity in policy.deferral.security_severities
            or release.category in policy.deferral.security_categories)


def deferred_until(policy: Policy, release: ReleaseFacts) -> datetime | None:
    """The end of the release's deferral, or None if it is not deferred."""
    if not policy.deferral.days or is_security(policy, release):
        return None
    return release.published_at + timedelta(days=policy.deferral.days)


def deadline_of(policy: Policy, release: ReleaseFacts) -> datetime | None:
    hours = policy.deadline_hours.get(release.severity)
    return None if hours is None else release.published_at + timedelta(hours=hours)


def jitter_fraction(device_id: str, release: str, opens: datetime) -> float:
    """Stable in [0, 1) per device, release and window opening; the hub computes it too."""
    digest = hashlib.sha256(f"{device_id}\n{release}\n{opens.isoformat()}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass(frozen=True)
class _Opening:
    at: datetime
    window: str
    closes: datetime


def _windows_from(policy: Policy, device: DeviceFacts, release: str, not_before: datetime,
                  jitter: bool) -> _Opening | None:
    """The first moment >= not_before inside a window (after its jitter), or None."""
    best: _Opening | None = None
    horizon = not_before + timedelta(days=SEARCH_DAYS)
    spread = timedelta(minutes=policy.jitter_minutes) if jitter else timedelta(0)
    for window in policy.windows:
        zone = load_zone(window.timezone or policy.timezone)
        for weekly in window.ranges():
            for opens, closes in occurrences(weekly, zone, not_before, horizon):
                offset = min(spread, (closes - opens) / 2)
                jittered = opens + offset * jitter_fraction(device.device_id, release, opens)
                at = max(jittered.replace(microsecond=0), not_before)
                if at >= closes:
                    continue
                if best is None or at < best.at:
                    best = _Opening(at, window.name, closes)
                break  # later occurrences of this range open later still
    return best


DEADLINE_LEAD = timedelta(hours=1)
"""How long before a deadline a device with no window left starts: snapshot, install
and health checks take minutes, and starting at the deadline itself made a device that
came back from days offline miss a 72 h deadline by minutes with nothing wrong with it
(found by the 10,000-device simulation, tests/sim/)."""


def plan_install(policy: Policy, release: ReleaseFacts, device: DeviceFacts,
                 now: datetime) -> Plan:
    """When the device may start snapshotting and installing `release`."""
    zone = policy.timezone
    blocked = policy.blocklist.match(release.name, release.version, release.category)
    if blocked:
        return Plan(Verdict.BLOCKED, blocked, None, zone, start_download=False)
    if policy.paused:
        return Plan(Verdict.PAUSED, "the group's policy is paused", None, zone,
                    start_download=False)
    deadline = deadline_of(policy, release)
    not_before, deferred = now, ""
    until = deferred_until(policy, release)
    if until is not None and until > now:
        not_before = until
        deferred = f"deferred until {_short(until, zone, now)}"
    if deadline is not None and deadline <= not_before:
        at = not_before
        reason = "deadline passed" if not deferred else f"{deferred}, then deadline passed"
        return _plan(at, reason, zone, deadline, now, deferred)
    if not policy.windows:
        reason = "no maintenance windows: any time"
        return _plan(not_before, f"{deferred}, then any time" if deferred else reason,
                     zone, deadline, now, deferred)
    opening = _windows_from(policy, device, release.release, not_before, jitter=True)
    if opening is None or (deadline is not None and deadline < opening.at):
        if deadline is None:
            return Plan(Verdict.BLOCKED, "no maintenance window ever opens", None, zone,
                        start_download=False)
        start = max(not_before, deadline - DEADLINE_LEAD)
        return _plan(start, "deadline", zone, deadline, now, deferred)
    reason = f"window {opening.window!r}" + (" open" if opening.at <= now else "")
    return _plan(opening.at, f"{deferred}, then {reason}" if deferred else reason, zone,
                 deadline, now, deferred)


def _plan(at: datetime, reason: str, zone: str, deadline: datetime | None, now: datetime,
          deferred: str) -> Plan:
    verdict = Verdict.NOW if at <= now else Verdict.WAIT
    return Plan(verdict, reason, None if verdict is Verdict.NOW else at, zone, deadline,
                start_download=not deferred)


def plan_reboot(policy: Policy, release: ReleaseFacts, device: DeviceFacts,
                now: datetime) -> Plan:
    """When the device may reboot for `release`: inside a window (no jitter: the install
    already spread the devices), or past the deadline if the policy says so. A pause does
    not hold a reboot back: the change is already made, finishing it is the safe path."""
    zone = policy.timezone
    deadline = deadline_of(policy, release)
    if not policy.windows:
        return Plan(Verdict.NOW, "no maintenance windows: any time", None, zone, deadline)
    if policy.reboot == "deadline" and deadline is not None and deadline <= now:
        return Plan(Verdict.NOW, "deadline passed", None, zone, deadline)
    opening = _windows_from(policy, device, release.release, now, jitter=False)
    if opening is None:
        return Plan(Verdict.BLOCKED, "no maintenance window ever opens", None, zone, deadline)
    if policy.reboot == "deadline" and deadline is not None and deadline < opening.at:
        return Plan(Verdict.WAIT, "reboot at the deadline", deadline, zone, deadline)
    if opening.at <= now:
        return Plan(Verdict.NOW, f"window {opening.window!r} open", None, zone, deadline)
    return Plan(Verdict.WAIT, f"reboot waits for window {opening.window!r}", opening.at, zone,
                deadline)
