"""Login attempts, rate-limited per account name and per client address.

Each key may fail a few times freely (`free_failures`); after that every further attempt
must wait 2^(failures - free + 1) seconds after the last failure (2, 4, 8 ... s), up
to `max_delay`. An
attempt made while a key must wait is refused without checking the password, so a
guesser gets one guess per delay no matter how fast it asks. A success clears the
account's count and the address's. Per account, a guesser spread over many addresses
is slowed; per address, one guessing many names is. Kept in memory of the one `serve`
process (a restart forgets it, which costs a guesser a restart of the hub per few
guesses); bounded in size, forgetting the entries whose wait is long over first.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Failures:
    count: int
    last: float


class LoginThrottle:
    def __init__(
        self,
        account_free_failures: int = 5,
        address_free_failures: int = 20,
        max_delay: float = 900.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.free = {"account": account_free_failures, "address": address_free_failures}
        self.max_delay = max_delay
        self.max_entries = max_entries
        self.clock = clock
        self._failures: dict[tuple[str, str], _Failures] = {}

    def wait_seconds(self, account: str, address: str) -> float:
        """How long until an attempt for `account` from `address` is allowed; 0 now."""
        now = self.clock()
        return max(self._wait(("account", account), now), self._wait(("address", address), now))

    def failed(self, account: str, address: str) -> None:
        now = self.clock()
        for key in (("account", account), ("address", address)):
            entry = self._failures.get(key)
            if entry is None:
                self._failures[key] = _Failures(1, now)
            else:
                entry.count += 1
                entry.last = now
        if len(self._failures) > self.max_entries:
            self._forget(now)

    def succeeded(self, account: str, address: str) -> None:
        self._failures.pop(("account", account), None)
        self._failures.pop(("address", address), None)

    def _delay(self, key: tuple[str, str], count: int) -> float:
        over = count - self.free[key[0]]
        return 0.0 if over < 0 else min(float(2 ** min(over + 1, 30)), self.max_delay)

    def _wait(self, key: tuple[str, str], now: float) -> float:
        entry = self._failures.get(key)
        if entry is None:
            return 0.0
        return max(0.0, entry.last + self._delay(key, entry.count) - now)

    def _forget(self, now: float) -> None:
        """Drops entries whose wait ended longest ago until half the bound is left."""
        by_end = sorted(self._failures, key=lambda k: self._failures[k].last
                        + self._delay(k, self._failures[k].count))
        for key in by_end[: len(by_end) - self.max_entries // 2]:
            del self._failures[key]
