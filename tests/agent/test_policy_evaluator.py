"""The pure evaluator: windows, jitter, deadlines, deferral, blocklist, pause, reboots."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from agent.policy import DeviceFacts, Policy, ReleaseFacts, Verdict, plan_install, plan_reboot
from agent.wire.release import Severity

DEVICE = DeviceFacts("dev-0000000000000000aaaa")
WEEKEND = """
timezone = "Europe/Berlin"
[[windows]]
name = "weekend"
when = "Sun 02:00-05:00"
"""


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def release(severity=Severity.MODERATE, category="application", published=utc(2024, 6, 3, 8),
            name="demo-app") -> ReleaseFacts:
    return ReleaseFacts(f"releases/{name}/1.0/{name}.tar", name, "1.0", severity, category,
                        published)


def policy(text: str) -> Policy:
    return Policy.from_toml(text, "test.toml")


def test_outside_a_window_the_plan_is_the_next_window_opening():
    plan = plan_install(policy(WEEKEND), release(), DEVICE, utc(2024, 6, 4, 12))  # Tue
    assert plan.verdict is Verdict.WAIT
    assert plan.at == utc(2024, 6, 9, 0)  # Sun 02:00 CEST
    assert plan.describe(utc(2024, 6, 4, 12)) == "next: Sun 02:00 Europe/Berlin (window 'weekend')"


def test_inside_a_window_the_plan_is_now():
    plan = plan_install(policy(WEEKEND), release(), DEVICE, utc(2024, 6, 9, 1))
    assert plan.verdict is Verdict.NOW and plan.reason == "window 'weekend' open"


def test_jitter_spreads_devices_inside_the_window_and_is_stable_per_device():
    jittered = policy("jitter_minutes = 60\n" + WEEKEND)
    now = utc(2024, 6, 4, 12)
    starts = {plan_install(jittered, release(), DeviceFacts(f"dev-{i:020d}"), now).at
              for i in range(40)}
    assert len(starts) > 30
    assert all(utc(2024, 6, 9, 0) <= at < utc(2024, 6, 9, 1) for at in starts if at)
    again = plan_install(jittered, release(), DeviceFacts("dev-00000000000000000007"), now)
    assert again.at in starts


def test_with_no_window_before_the_deadline_it_starts_an_hour_ahead_and_once_passed_at_once():
    p = policy(WEEKEND + "[deadline_hours]\ncritical = 72\n")
    critical = release(Severity.CRITICAL, published=utc(2024, 6, 3, 7))  # Mon 09:00 Berlin
    before = plan_install(p, critical, DEVICE, utc(2024, 6, 4, 12))
    assert before.describe(utc(2024, 6, 4, 12)) == (
        "next: Thu 08:00 Europe/Berlin (deadline), deadline Thu 09:00")
    back_late = plan_install(p, critical, DEVICE, utc(2024, 6, 6, 6, 30))  # 30 min to go
    assert back_late.verdict is Verdict.NOW and back_late.reason == "deadline"
    after = plan_install(p, critical, DEVICE, utc(2024, 6, 6, 7, 0, 1))
    assert after.verdict is Verdict.NOW and after.reason == "deadline passed"


def test_a_deadline_after_the_next_window_waits_for_the_window():
    p = policy(WEEKEND + "[deadline_hours]\nimportant = 168\n")
    plan = plan_install(p, release(Severity.IMPORTANT), DEVICE, utc(2024, 6, 4, 12))
    assert plan.at == utc(2024, 6, 9, 0) and plan.deadline == utc(2024, 6, 10, 8)


def test_a_non_security_release_is_deferred_and_not_even_downloaded():
    p = policy(WEEKEND + "[deferral]\ndays = 30\n")
    plan = plan_install(p, release(), DEVICE, utc(2024, 6, 4, 12))
    assert plan.verdict is Verdict.WAIT and not plan.start_download
    assert plan.at == utc(2024, 7, 7, 0)  # the first Sunday window after 2024-07-03 08:00
    assert plan.reason.startswith("deferred until")
    security = plan_install(p, release(Severity.CRITICAL), DEVICE, utc(2024, 6, 4, 12))
    assert security.start_download and security.at == utc(2024, 6, 9, 0)
    by_category = plan_install(p, release(category="security"), DEVICE, utc(2024, 6, 4, 12))
    assert by_category.start_download


def test_blocklisted_and_paused_never_install_and_are_not_downloaded():
    blocked = plan_install(policy('[blocklist]\ncategories = ["driver"]\n'),
                           release(Severity.CRITICAL, category="driver"), DEVICE, utc(2024, 6, 4))
    assert blocked.verdict is Verdict.BLOCKED and blocked.at is None
    assert not blocked.start_download
    assert blocked.describe(utc(2024, 6, 4)) == (
        "blocked: blocklisted by category pattern 'driver'")
    paused = plan_install(policy("paused = true\n[deadline_hours]\ncritical = 0\n"),
                          release(Severity.CRITICAL), DEVICE, utc(2024, 6, 4))
    assert paused.verdict is Verdict.PAUSED and not paused.start_download


def test_without_windows_any_time_is_fine():
    assert plan_install(policy(""), release(), DEVICE, utc(2024, 6, 4)).verdict is Verdict.NOW


def test_a_reboot_waits_for_a_window_even_past_the_deadline_unless_the_policy_says_so():
    text = WEEKEND + "[deadline_hours]\ncritical = 1\n"
    critical = release(Severity.CRITICAL)
    now = utc(2024, 6, 5, 12)  # Wednesday, deadline long past
    assert plan_install(policy(text), critical, DEVICE, now).verdict is Verdict.NOW
    reboot = plan_reboot(policy(text), critical, DEVICE, now)
    assert reboot.verdict is Verdict.WAIT and reboot.at == utc(2024, 6, 9, 0)
    assert plan_reboot(policy('reboot = "deadline"\n' + text), critical, DEVICE,
                       now).verdict is Verdict.NOW


def test_a_pause_does_not_hold_back_the_reboot_of_a_change_already_made():
    text = "paused = true\n" + WEEKEND
    plan = plan_reboot(policy(text), release(), DEVICE, utc(2024, 6, 9, 1))
    assert plan.verdict is Verdict.NOW


def test_the_plan_is_the_same_wherever_in_the_week_it_is_asked():
    p = policy(WEEKEND)
    start = utc(2024, 6, 3)
    answers = {plan_install(p, release(), DEVICE, start + timedelta(hours=h)).at
               for h in range(0, 6 * 24, 7)}
    assert answers == {utc(2024, 6, 9, 0)}
