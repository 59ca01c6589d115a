"""A TEST HOOK: make the agent kill itself (SIGKILL) right after a named transition.

Crash-recovery tests need a real process death at every journaled transition, at a
deterministic point. When the environment variable MEISITONG_CRASH_AFTER is set, the
agent SIGKILLs itself as soon as the named transition is durably in the journal:

    MEISITONG_CRASH_AFTER=installing      the first time `installing` is journaled
    MEISITONG_CRASH_AFTER=installing:2    the second time, in this process
    MEISITONG_CRASH_AFTER=*               the first transition this process journals

A restarted agent that resumes a deployment in the state it was killed in (without a new
transition) passes the same point again: that counts as reaching it, so the same
setting kills it twice in a row at the same place.

It is a real process death (no cleanup, no finally blocks), exactly what a power cut or
an OOM kill does to the agent. It cannot fire in production by accident: nothing but
that environment variable arms it (no config key, no CLI flag), and an armed hook logs
at CRITICAL when the agent starts and again when it fires.
"""

from __future__ import annotations

import logging
import os
import signal

logger = logging.getLogger(__name__)

ENV_VAR = "MEISITONG_CRASH_AFTER"
ANY = "*"


class CrashPoints:
    def __init__(self, spec: str | None) -> None:
        self.state: str | None = None
        self.count = 1
        self._seen = 0
        self._visited: set[str] = set()
        if spec:
            name, _, count = spec.partition(":")
            self.state = name.strip()
            self.count = int(count) if count.strip().isdigit() else 1

    @classmethod
    def from_environment(cls) -> CrashPoints:
        points = cls(os.environ.get(ENV_VAR))
        if points.armed:
            logger.critical(
                "TEST HOOK ARMED: %s=%s: this agent will SIGKILL itself after that "
                "transition. Never set this outside crash tests.",
                ENV_VAR, os.environ[ENV_VAR],
            )
        return points

    @property
    def armed(self) -> bool:
        return self.state is not None

    def started_here(self, release: str) -> None:
        """A deployment this process created: running it is not a resume."""
        self._visited.add(release)

    def after_resume(self, release: str, state: str) -> None:
        """A deployment found in `state` by this process resumes there (once per release)."""
        if release not in self._visited:
            self._visited.add(release)
            self.after_transition(state)

    def after_transition(self, state: str) -> None:
        """Called once `state` is durably journaled; dies here if this is the point."""
        if self.state is None or (self.state != ANY and self.state != state):
            return
        self._seen += 1
        if self._seen < self.count:
            return
        logger.critical("TEST HOOK: %s=%s: SIGKILL after journaling %s",
                        ENV_VAR, os.environ.get(ENV_VAR), state)
        for handler in logging.getLogger().handlers:
            handler.flush()
        os.kill(os.getpid(), signal.SIGKILL)


_points: CrashPoints | None = None


def crash_points() -> CrashPoints:
    """The process's hook, read from the environment once."""
    global _points
    if _points is None:
        _points = CrashPoints.from_environment()
    return _points
