"""Maintenance windows: parsing, midnight crossing, and DST in both directions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agent.policy.windows import WeeklyRange, load_zone, occurrences

BERLIN = load_zone("Europe/Berlin")
NEW_YORK = load_zone("America/New_York")


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def windows(spec: str, zone, start: datetime, days: int = 7):
    return list(occurrences(WeeklyRange.parse(spec), zone, start, start + timedelta(days=days)))


def test_day_lists_ranges_and_daily_are_understood():
    assert WeeklyRange.parse("Mon-Fri 22:00-04:00").days == frozenset(range(5))
    assert WeeklyRange.parse("Sat,Sun 01:00-05:00").days == frozenset({5, 6})
    assert WeeklyRange.parse("Fri-Mon 01:00-05:00").days == frozenset({4, 5, 6, 0})
    assert WeeklyRange.parse("Daily 00:00-24:00").days == frozenset(range(7))
    assert WeeklyRange.parse("sunday 3:00-4:00").start == 180


def test_a_window_crossing_midnight_closes_the_next_day():
    # Friday 2024-06-07 22:00 Berlin (CEST, +2) to Saturday 04:00.
    (opens, closes), = windows("Fri 22:00-04:00", BERLIN, utc(2024, 6, 3))
    assert opens == utc(2024, 6, 7, 20) and closes == utc(2024, 6, 8, 2)


def test_spring_forward_shortens_a_window_over_the_skipped_hour():
    # 2024-03-31 02:00 CET jumps to 03:00 CEST: local 02:00-04:00 is one real hour.
    (opens, closes), = windows("Sun 02:00-04:00", BERLIN, utc(2024, 3, 25))
    assert opens == utc(2024, 3, 31, 1) and closes == utc(2024, 3, 31, 2)
    assert opens.astimezone(BERLIN).strftime("%H:%M") == "03:00"


def test_a_window_starting_in_the_skipped_hour_opens_when_the_clock_jumps():
    (opens, _), = windows("Sun 02:30-05:00", BERLIN, utc(2024, 3, 25))
    assert opens == utc(2024, 3, 31, 1)


def test_fall_back_lengthens_a_window_over_the_repeated_hour():
    # 2024-10-27 03:00 CEST falls back to 02:00 CET: local 02:00-04:00 is three hours.
    (opens, closes), = windows("Sun 02:00-04:00", BERLIN, utc(2024, 10, 21))
    assert opens == utc(2024, 10, 27, 0) and closes == utc(2024, 10, 27, 3)


def test_a_window_ending_in_the_repeated_hour_ends_at_its_second_occurrence():
    (opens, closes), = windows("Sun 01:00-02:30", BERLIN, utc(2024, 10, 21))
    assert opens == utc(2024, 10, 26, 23) and closes == utc(2024, 10, 27, 1, 30)


def test_the_same_local_window_moves_in_utc_across_a_dst_change():
    daily = windows("Daily 01:00-02:00", NEW_YORK, utc(2024, 3, 8), days=4)
    # New York springs forward on 2024-03-10 at 02:00: 01:00 that day is still EST
    # (06:00 UTC); from the 11th 01:00 EDT is 05:00 UTC.
    assert [opens.hour for opens, _ in daily] == [6, 6, 6, 5]
    assert all(opens.astimezone(NEW_YORK).hour == 1 for opens, _ in daily)


@pytest.mark.parametrize(
    ("spec", "reason"),
    [("Mon 25:00-26:00", "hour 25 is not 00-23"), ("Mon 24:00-02:00", "hour 24"),
     ("Mon 01:00", "is not a window"), ("Xyz 01:00-02:00", "'Xyz' is not a day"),
     ("Mon 02:00-02:00", "start and end are equal")],
)
def test_bad_window_specs_say_what_is_wrong(spec, reason):
    with pytest.raises(ValueError, match=reason):
        WeeklyRange.parse(spec)
