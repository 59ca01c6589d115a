"""Weekly maintenance windows in a named IANA time zone, as instants in UTC.

A window is written `DAYS HH:MM-HH:MM`, e.g. `Sat,Sun 01:00-05:00`, `Mon-Fri 22:00-04:00`
(crosses midnight: Mon 22:00 → Tue 04:00; the day names the day it opens) or
`Daily 00:00-24:00`. It is open while the *local wall-clock time* lies in it, which makes
DST changes come out the way an admin expects:

- spring forward (02:00 → 03:00): a window 02:00-04:00 opens at 03:00 and lasts an hour;
  one that starts inside the skipped hour opens when the clock jumps;
- fall back (03:00 → 02:00): a window 02:00-04:00 lasts three hours (the repeated hour
  is inside it); an end inside the repeated hour means its later occurrence.

Everything here is pure: no clock is read, instants go in and out as aware UTC datetimes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_SPEC = re.compile(
    r"^\s*(?P<days>[A-Za-z*,\-]+)\s+(?P<start>\d{1,2}:\d{2})\s*-\s*(?P<end>\d{1,2}:\d{2})\s*$"
)


def load_zone(name: str) -> ZoneInfo:
    """The IANA zone `name`, or ValueError naming it."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r} (use an IANA name such as Europe/Berlin or UTC)"
        ) from None


_FULL_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def _day(name: str, spec: str) -> int:
    key = name.strip().lower()
    for index, full in enumerate(_FULL_NAMES):
        if key in (full, full[:3]):
            return index
    raise ValueError(f"{spec!r}: {name.strip()!r} is not a day (use Mon, Tue, … Sun, or Daily)")


def _minutes(text: str, spec: str, *, is_end: bool) -> int:
    hours_text, minutes_text = text.split(":")
    hours, minutes = int(hours_text), int(minutes_text)
    if minutes > 59:
        raise ValueError(f"{spec!r}: minute {minutes_text} is not 00-59")
    if hours == 24 and minutes == 0 and is_end:
        return 24 * 60
    if hours > 23:
        raise ValueError(f"{spec!r}: hour {hours_text} is not 00-23" +
                         (" (24:00 is allowed as an end)" if is_end else ""))
    return hours * 60 + minutes


@dataclass(frozen=True)
class WeeklyRange:
    """Days of the week (0 = Monday) on which the range opens, and its local times in
    minutes after midnight. `end <= start` means it closes on the following day."""

    days: frozenset[int]
    start: int
    end: int

    @classmethod
    def parse(cls, spec: str) -> WeeklyRange:
        match = _SPEC.match(spec)
        if not match:
            raise ValueError(
                f"{spec!r} is not a window: write DAYS HH:MM-HH:MM, e.g. 'Sat,Sun 01:00-05:00'"
            )
        days: set[int] = set()
        for part in match["days"].split(","):
            if part.strip().lower() in ("daily", "*"):
                days.update(range(7))
                continue
            first, dash, last = part.partition("-")
            if dash:
                a, b = _day(first, spec), _day(last, spec)
                days.update((a + i) % 7 for i in range((b - a) % 7 + 1))
            else:
                days.add(_day(first, spec))
        start = _minutes(match["start"], spec, is_end=False)
        end = _minutes(match["end"], spec, is_end=True)
        if start == end:
            raise ValueError(f"{spec!r}: start and end are equal (use 00:00-24:00 for all day)")
        return cls(frozenset(days), start, end)

    @property
    def crosses_midnight(self) -> bool:
        return self.end <= self.start


def _wall(day: date, minutes: int) -> datetime:
    """Local naive datetime `minutes` after midnight of `day` (1440 = next midnight)."""
    return datetime.combine(day, time()) + timedelta(minutes=minutes)


def _exists(naive: datetime, zone: ZoneInfo) -> bool:
    aware = naive.replace(tzinfo=zone)
    return aware.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == naive


def _first_instant_at_or_after(naive: datetime, zone: ZoneInfo) -> datetime:
    """The first UTC instant at which local wall time reaches `naive`."""
    if _exists(naive, zone):
        return naive.replace(tzinfo=zone, fold=0).astimezone(UTC)
    # Inside a skipped hour: the answer is the moment the clock jumps over it.
    low = naive.replace(tzinfo=zone, fold=1).astimezone(UTC)  # local time before naive
    high = naive.replace(tzinfo=zone, fold=0).astimezone(UTC)  # local time after naive
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(zone).replace(tzinfo=None) >= naive:
            high = middle
        else:
            low = middle
    return high.replace(microsecond=0)


def _last_instant_before(naive: datetime, zone: ZoneInfo) -> datetime:
    """Where a window ending at local `naive` closes: its later occurrence if the time
    repeats (fall back), the jump if it is skipped (spring forward)."""
    if _exists(naive, zone):
        return naive.replace(tzinfo=zone, fold=1).astimezone(UTC)
    return _first_instant_at_or_after(naive, zone)


def occurrences(
    weekly: WeeklyRange, zone: ZoneInfo, start: datetime, end: datetime
) -> Iterator[tuple[datetime, datetime]]:
    """Each (open, close) in UTC of `weekly` that closes after `start` and opens before
    `end`, in order."""
    first = start.astimezone(zone).date() - timedelta(days=2)
    last = end.astimezone(zone).date() + timedelta(days=1)
    day = first
    while day <= last:
        if day.weekday() in weekly.days:
            opens = _first_instant_at_or_after(_wall(day, weekly.start), zone)
            closes = _close(day, weekly, zone)
            if closes > opens and closes > start and opens < end:
                yield opens, closes
        day += timedelta(days=1)


def _close(day: date, weekly: WeeklyRange, zone: ZoneInfo) -> datetime:
    if weekly.crosses_midnight:
        return _last_instant_before(_wall(day + timedelta(days=1), weekly.end), zone)
    return _last_instant_before(_wall(day, weekly.end), zone)
