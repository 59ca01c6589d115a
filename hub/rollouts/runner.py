"""When the controller's rules are applied: as results arrive, when an admin changes a
rollout or a device enrolls, and when a soak ends — not blindly on every tick.

`RolloutRuleRunner.run_if_due` is cheap when nothing changed (two indexed reads), so
the hub's serving loop calls it every couple of seconds; the fleet simulation calls it
on a MockClock. The clock is injected: `now` gives the wall time the rules compare soak
ends against.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

import trio

from hub.database import HubDatabase
from hub.hub_dir import HubDir
from hub.rollouts.changes import ControllerChange, apply_rollout_rules
from hub.rollouts.controller import Verdict

log = logging.getLogger(__name__)

CHECK_SECONDS = 2.0


def utc_now() -> datetime:
    return datetime.now(UTC)


class RolloutRuleRunner:
    def __init__(self, hub_dir: HubDir, now: Callable[[], datetime] = utc_now) -> None:
        self.hub_dir = hub_dir
        self.now = now
        self._seen: tuple[int, int] | None = None
        self._recheck_at: datetime | None = None

    def run_if_due(self) -> list[ControllerChange]:
        """Apply the rules if a result or audited change arrived since the last pass, or
        a soak has ended; returns what changed."""
        marks = self._change_marks()
        now = self.now()
        soak_over = self._recheck_at is not None and now >= self._recheck_at
        if marks == self._seen and not soak_over:
            return []
        result = apply_rollout_rules(self.hub_dir, now)
        # After a change, look again next time: the new stage has its own soak to wait for.
        self._seen = None if result.changes else marks
        self._recheck_at = result.recheck_at
        for change in result.changes:
            # Advancing is the controller doing its job; only a halt wants attention.
            level = logging.WARNING if change.verdict is Verdict.HALT else logging.INFO
            log.log(level, "rollout of %s to %s: %s (%s)", change.release, change.group,
                    change.verdict, change.reason)
        return result.changes

    async def run(self, interval: float = CHECK_SECONDS) -> None:
        """Forever: apply the rules when due, every `interval` seconds (trio's clock)."""
        while True:
            try:
                await trio.to_thread.run_sync(self.run_if_due)
            except Exception:
                log.exception("rollout controller pass failed; retrying")
            await trio.sleep(interval)

    def _change_marks(self) -> tuple[int, int]:
        database = HubDatabase(self.hub_dir.database)
        try:
            results = database.query("SELECT coalesce(max(rowid), 0) FROM results")[0][0]
            audit = database.query("SELECT coalesce(max(id), 0) FROM audit")[0][0]
        finally:
            database.close()
        return int(results), int(audit)
