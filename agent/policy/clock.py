"""Wall-clock time on trio's clock, so scheduling runs on `MockClock` in tests.

Policies speak in wall-clock time (windows, deadlines), trio sleeps in its own clock.
`TrioWallClock` maps one onto the other from an anchor: in production the anchor is
the system time, re-read at every call (so NTP steps and suspend are seen); in tests a
fixed date plus trio's (mock) time, so weeks pass in milliseconds.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol

import trio

MAX_NAP_SECONDS = 900.0
"""Long sleeps are cut into naps this long, so a clock step or a suspend delays a window
by at most this much. With a mock clock a nap costs nothing."""


class WallClock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class TrioWallClock:
    """`anchor` at trio time `at`, moving with trio's clock (MockClock in tests)."""

    def __init__(self, anchor: datetime, at: float | None = None) -> None:
        self.anchor = anchor
        self.at = trio.current_time() if at is None else at

    def now(self) -> datetime:
        return self.anchor + timedelta(seconds=trio.current_time() - self.at)


async def sleep_until(clock: WallClock, when: datetime, max_nap: float = MAX_NAP_SECONDS) -> None:
    """Sleep until the wall clock reads `when` (or later)."""
    while True:
        remaining = (when - clock.now()).total_seconds()
        if remaining <= 0:
            return
        await trio.sleep(min(remaining, max_nap))
