"""The real DeploymentGate: the group's policy decides when a deployment may install or
reboot, and the hub's disruption-budget lease how many devices may at once.

Never blocks the daemon for long before an install: if the time has not come, it
journals the plan (`meisitong-agent status` shows it) and raises `NotEligibleYet`; the
deployment stays in `verified` (nothing changed) and the daemon sleeps until the
earliest planned time (`seconds_until_next`), so other releases — a critical fix whose
deadline passed — are not stuck behind one waiting for the weekend. A reboot, by
contrast, is waited for in place: the device is mid-change.

No lease, no install: a refused lease and an unreachable hub both mean wait. No
install and no new deployment either while the policy source holds (a listed policy or
assignment cannot be fetched or verified: agent/policy/hold.py).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import trio

from agent.deployment import RetryLater
from agent.errors import LeaseUnavailableError
from agent.journal import Journal
from agent.lease_client import LeaseService
from agent.policy.clock import MAX_NAP_SECONDS, SystemClock, WallClock
from agent.policy.evaluator import (
    DeviceFacts,
    ReleaseFacts,
    Verdict,
    deferred_until,
    plan_install,
    plan_reboot,
)
from agent.policy.hold import PolicyHold
from agent.policy.model import NO_POLICY, Policy
from agent.policy.source import PolicyUpdate
from agent.wire.release import ReleaseInfo

log = logging.getLogger(__name__)

LEASE_RETRY_SECONDS = 30.0
RENEWAL_RETRY_SECONDS = 5.0  # after a renewal the hub could not be asked for
_SCOPE_SAFE = re.compile(r"^[A-Za-z0-9._-]{1,40}$")


class NotEligibleYet(RetryLater):
    """Policy says not now; nothing changed on the device. `at`: when to ask again."""

    def __init__(self, release: str, text: str, at: datetime | None) -> None:
        super().__init__(f"{release}: {text}")
        self.release, self.text, self.at = release, text, at


@dataclass
class HeldLease:
    group: str
    scope: str
    ttl_seconds: int
    expires_at: str
    lifetime_seconds: float = 0.0  # as the hub granted it (its policy decides, not ours)

    def renew_at(self) -> datetime | None:
        """When a third of the granted lifetime has passed, so two renewals can fail
        before it runs out; None for a lease journaled without an expiry."""
        if not self.expires_at:
            return None
        lifetime = self.lifetime_seconds or self.ttl_seconds
        return datetime.fromisoformat(self.expires_at) - timedelta(seconds=lifetime * 2 / 3)

    def granted(self, expires_at: str, now: datetime) -> None:
        self.expires_at = expires_at
        self.lifetime_seconds = max(1.0, (datetime.fromisoformat(expires_at) - now)
                                    .total_seconds())


class PolicyGate:
    def __init__(self, journal: Journal, device: DeviceFacts,
                 leases: LeaseService | None = None, clock: WallClock | None = None,
                 lease_retry_seconds: float = LEASE_RETRY_SECONDS) -> None:
        self.journal = journal
        self.device = device
        self.leases = leases
        self.clock = clock or SystemClock()
        self.lease_retry = timedelta(seconds=lease_retry_seconds)
        self.group = ""
        self.policy: Policy = NO_POLICY
        self.hold: PolicyHold | None = None
        self._digest: str | None = None
        self._plans: dict[str, dict[str, Any]] = {}
        self._replan = False
        self._changed = trio.Event()
        self._held: dict[str, HeldLease] = self._journaled_leases()
        self._lease_taken = trio.Event()  # wakes the renewal loop for a new lease

    # -- policy ---------------------------------------------------------------------

    def apply(self, update: PolicyUpdate) -> bool:
        """Put `update` in force; True (and re-plan at once) if the policy changed."""
        note = update.note + (f"; REFUSED newer policy: {update.error}" if update.error else "")
        self.journal.set_status("policy", note)
        self.journal.set_status("hold", update.hold.describe() if update.hold else "")
        self.hold = update.hold
        changed = (update.group, update.digest) != (self.group, self._digest)
        first = self._digest is None
        self.group, self.policy, self._digest = update.group, update.policy, update.digest
        self._plans = {r: p for r, p in self._plans.items() if p["stage"] != "admission"}
        if changed:
            log.info("policy in force: %s", update.note)
            self._replan = not first  # plans made under the old policy are stale
            self._changed.set()
            self._changed = trio.Event()
        self._journal_plans()
        return changed

    def admit(self, release: str, info: ReleaseInfo) -> bool:
        """May a new deployment of `release` start (download) now? Not while it is
        blocklisted, paused or deferred; the plan is journaled either way."""
        if self.hold is not None:
            self._record(release, "admission", self._held_text(self.hold), None)
            return False
        now = self.clock.now()
        facts = ReleaseFacts.from_info(release, info)
        plan = plan_install(self.policy, facts, self.device, now)
        if plan.start_download:
            self._plans.pop(release, None)
            self._journal_plans()
            return True
        wake = deferred_until(self.policy, facts) if plan.verdict is Verdict.WAIT else None
        self._record(release, "admission", plan.describe(now), wake)
        return False

    # -- the DeploymentGate protocol ---------------------------------------------------

    async def wait_for_install(self, release: str, info: ReleaseInfo) -> None:
        if self.hold is not None:
            text = self._held_text(self.hold)
            self._record(release, "install", text, None)
            await self._give_back(release)
            raise NotEligibleYet(release, text, None)
        now = self.clock.now()
        plan = plan_install(self.policy, ReleaseFacts.from_info(release, info), self.device, now)
        if plan.verdict is not Verdict.NOW:
            text = plan.describe(now)
            self._record(release, "install", text, plan.at)
            await self._give_back(release)  # held from before a restart, say
            raise NotEligibleYet(release, text, plan.at)
        waiting = await self._lease(release, now)
        if waiting is not None:
            text, retry_at = waiting
            self._record(release, "install", text, retry_at)
            raise NotEligibleYet(release, text, retry_at)
        self._drop(release)

    async def wait_for_reboot(self, release: str, info: ReleaseInfo) -> None:
        """Return when the device may reboot for `release` now; else NotEligibleYet with
        when to ask again. The deployment stays journaled in `rebooting`, and the daemon
        goes on meanwhile: waiting days for a reboot window in place held its main loop,
        so no refresh, no halt, no pause and no other release (not even a critical one
        past its deadline) could happen until the weekend."""
        facts = ReleaseFacts.from_info(release, info)
        now = self.clock.now()
        plan = plan_reboot(self.policy, facts, self.device, now)
        wake: datetime | None = plan.at
        if plan.verdict is Verdict.NOW:
            waiting = await self._lease(release, now)
            if waiting is None:
                self._drop(release)
                return
            text, wake = waiting
        else:
            text = plan.describe(now)
        self._record(release, "reboot", text, wake)
        raise NotEligibleYet(release, text, wake)

    async def finished(self, release: str) -> None:
        await self._give_back(release)
        self._drop(release)

    # -- for the daemon -----------------------------------------------------------------

    def seconds_until_next(self, limit: float) -> float:
        """How long the daemon may sleep: until the earliest planned time, at most
        `limit` (the metadata refresh interval); 0 if the policy just changed."""
        if self._replan:
            self._replan = False
            return 0.0
        now = self.clock.now()
        seconds = limit
        for plan in self._plans.values():
            if plan["at"] is not None:
                due = (datetime.fromisoformat(plan["at"]) - now).total_seconds()
                seconds = min(seconds, max(0.0, due))
        return seconds

    async def sleep(self, limit: float) -> None:
        """The daemon's rest between cycles: until the earliest planned time, at most
        `limit`, and woken early when a new policy is put in force."""
        changed = self._changed
        with trio.move_on_after(self.seconds_until_next(limit)):
            await changed.wait()

    def plans(self) -> dict[str, dict[str, Any]]:
        return dict(self._plans)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        """Renew each held lease when a third of its granted lifetime has passed, until
        cancelled. A lease taken meanwhile wakes the loop, so even a lease shorter than
        the loop's last nap is renewed in time; a renewal the hub refuses drops the lease,
        and the next step that needs one (a reboot) waits for a new grant."""
        task_status.started()
        floor = 1.0
        while True:
            taken = self._lease_taken
            with trio.move_on_after(self._seconds_until_renewal(floor)):
                await taken.wait()
            floor = 1.0
            now = self.clock.now()
            for release, held in list(self._held.items()):
                due = held.renew_at()
                if self.leases is None or (due is not None and due > now):
                    continue
                try:
                    answer = await self.leases.acquire(held.group, held.scope, release,
                                                       held.ttl_seconds)
                except LeaseUnavailableError as exc:
                    log.warning("cannot renew the lease for %s: %s", release, exc)
                    floor = RENEWAL_RETRY_SECONDS
                    continue
                except Exception:  # noqa: BLE001 - no hub answer may end the daemon
                    log.exception("renewing the lease for %s failed unexpectedly", release)
                    floor = RENEWAL_RETRY_SECONDS
                    continue
                if answer.granted and answer.expires_at:
                    held.granted(answer.expires_at, self.clock.now())
                elif self._held.get(release) is held:
                    log.warning("the hub refused to renew the lease for %s (%s): holding "
                                "back until it grants a new one", release,
                                answer.reason or "no reason given")
                    del self._held[release]
                self._journal_leases()

    def _seconds_until_renewal(self, floor: float) -> float:
        now = self.clock.now()
        dues = [held.renew_at() for held in self._held.values()]
        seconds = [(due - now).total_seconds() for due in dues if due is not None]
        return max(floor, min(seconds, default=MAX_NAP_SECONDS))

    def holds_lease(self, release: str) -> bool:
        return release in self._held

    # -- internals ------------------------------------------------------------------------

    @staticmethod
    def _held_text(hold: PolicyHold) -> str:
        return f"held: {hold.file} cannot be used ({hold.why})"

    def _scope(self) -> str:
        disruption = self.policy.disruption
        if disruption is None or disruption.per_label is None:
            return ""
        value = self.device.labels.get(disruption.per_label, "")
        if not _SCOPE_SAFE.match(value):
            value = hashlib.sha256(value.encode()).hexdigest()[:16]
        return f"{disruption.per_label}={value}"

    async def _lease(self, release: str, now: datetime) -> tuple[str, datetime] | None:
        """None if the budget allows acting now (lease held), else (why, when to retry)."""
        disruption = self.policy.disruption
        if disruption is None:
            return None
        scope, ttl = self._scope(), int(disruption.lease_minutes * 60)
        where = f"group {self.group}" + (f" {scope}" if scope else "")
        retry = now + self.lease_retry
        if self.leases is None:
            return f"waiting for a disruption-budget lease: no hub to ask ({where})", retry
        try:
            answer = await self.leases.acquire(self.group, scope, release, ttl)
        except LeaseUnavailableError as exc:
            return f"waiting for a disruption-budget lease: {exc}", retry
        if not answer.granted:
            if answer.retry_at:
                retry = min(retry, datetime.fromisoformat(answer.retry_at))
            return (f"waiting for a disruption-budget lease ({answer.held} of "
                    f"{answer.max_concurrent} held in {where})", retry)
        held = HeldLease(self.group, scope, ttl, "")
        if answer.expires_at:
            held.granted(answer.expires_at, now)
        self._held[release] = held
        self._journal_leases()
        self._lease_taken.set()
        self._lease_taken = trio.Event()
        return None

    async def _give_back(self, release: str) -> None:
        held = self._held.pop(release, None)
        if held is None:
            return
        self._journal_leases()
        if self.leases is None:
            return
        try:
            await self.leases.release(held.group, held.scope, release)
        except LeaseUnavailableError as exc:  # it expires on its own
            log.warning("could not give back the lease for %s: %s", release, exc)

    def _record(self, release: str, stage: str, text: str, at: datetime | None) -> None:
        self._plans[release] = {"stage": stage, "text": text,
                                "at": at.isoformat() if at else None}
        self._journal_plans()

    def _drop(self, release: str) -> None:
        if self._plans.pop(release, None) is not None:
            self._journal_plans()

    def _journal_plans(self) -> None:
        self.journal.set_status("plans", json.dumps(self._plans, sort_keys=True))

    def _journal_leases(self) -> None:
        body = {release: vars(held) for release, held in self._held.items()}
        self.journal.set_status("leases", json.dumps(body, sort_keys=True))

    def _journaled_leases(self) -> dict[str, HeldLease]:
        value = self.journal.status().get("leases", ("{}", ""))[0]
        try:
            return {release: HeldLease(**held) for release, held in json.loads(value).items()}
        except (ValueError, TypeError):
            return {}
