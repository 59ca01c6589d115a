"""The pure compliance report (hub/compliance/report.py) over plain facts: each row's
status and reason, the shares, mean and p95, the filters, and admin exceptions whose
expiry puts the device back in scope with its original deadline."""

from datetime import UTC, datetime, timedelta

import pytest

from agent.policy import Policy
from agent.wire.rollout import RolloutEntry, RolloutState
from hub.compliance.facts import (
    AdminException,
    ComplianceFacts,
    DeviceFact,
    Filters,
    ReleaseFact,
    ResultFact,
    RolloutFact,
)
from hub.compliance.report import compute_report, compute_rows, percent

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
CRITICAL = ReleaseFact("releases/ssl/3.0.1/ssl.tar", "ssl", "3.0.1", "critical", "security", T0)
LOW = ReleaseFact("releases/font/1.1/font.tar", "font", "1.1", "low", "application",
                  T0 + timedelta(days=3))
POLICY = Policy.from_toml('deadline_hours = { critical = 72, low = 240 }\n'
                          '[deferral]\ndays = 30\n', "policy")


def rollout(release, group="web", **changes):
    return RolloutFact(group, RolloutEntry(release=release.target,
                                           started_at=T0.isoformat(), **changes))


def facts(devices, results=(), exceptions=(), now=T0 + timedelta(hours=100), releases=None,
          rollouts=None, policies=None):
    releases = releases or [CRITICAL]
    return ComplianceFacts(
        hub="https://hub.example", now=now, releases=list(releases),
        rollouts=rollouts or {r.target: [rollout(r)] for r in releases},
        devices=list(devices), results=list(results),
        policies={"web": POLICY} if policies is None else policies,
        exceptions=list(exceptions))


def device(name, group="web", seen_hours_ago=0.1, now=T0 + timedelta(hours=100)):
    return DeviceFact(f"dev-{name}", name, group, "hq", now - timedelta(hours=seen_hours_ago))


def result(name, outcome, hours, release=CRITICAL, reason=""):
    return ResultFact(f"dev-{name}", release.target, outcome, reason,
                      release.published_at + timedelta(hours=hours))


def by_device(rows):
    return {row["device"]: row for row in rows}


def test_each_device_gets_one_row_with_the_status_its_signed_result_and_deadline_give():
    devices = [device(n) for n in ("fast", "late", "reverted", "broken", "away", "silent")]
    devices[4] = device("away", seen_hours_ago=50)
    results = [result("fast", "installed", 2), result("late", "installed", 80),
               result("reverted", "reverted", 5, reason="health check failed"),
               result("broken", "revert-failed", 6)]
    rows = by_device(compute_rows(facts(devices, results)))
    assert {name: row["status"] for name, row in rows.items()} == {
        "fast": "compliant", "late": "late", "reverted": "reverted",
        "broken": "revert-failed", "away": "offline", "silent": "overdue"}
    assert rows["fast"]["deadline"] == "2026-11-05T08:00:00+00:00"
    assert rows["late"]["reason"] == "installed 8.0 h after the deadline"
    assert rows["reverted"]["reason"].endswith(": health check failed")
    assert rows["away"]["reason"] == "offline since 2026-11-04T10:00:00+00:00"
    assert all(row["in_scope"] for row in rows.values())


def test_share_mean_and_p95_count_in_scope_devices_only():
    devices = [device(f"d{i}") for i in range(20)]
    results = [result(f"d{i}", "installed", i + 1) for i in range(19)]
    exceptions = [AdminException("dev-d19", CRITICAL.target, "lab machine",
                                 T0 + timedelta(days=30), "admin:alice")]
    report = compute_report(facts(devices, results, exceptions))
    [summary] = report["summary"]
    assert summary["in_scope"] == 19 and summary["compliant"] == 19
    assert summary["share"] == 1.0 and percent(summary["share"]) == "100.0 %"
    assert summary["mean_hours"] == 10.0  # 1..19 hours
    assert summary["p95_hours"] == 19.0  # nearest rank: ceil(0.95 * 19) = 19th
    [excepted] = report["exceptions"]
    assert excepted["status"] == "excepted" and not excepted["in_scope"]
    assert "admin:alice" in excepted["reason"] and "lab machine" in excepted["reason"]


def test_reachable_share_leaves_offline_devices_out():
    devices = [device("a"), device("b"), device("c", seen_hours_ago=60)]
    results = [result("a", "installed", 1), result("b", "reverted", 1)]
    [summary] = compute_report(facts(devices, results))["summary"]
    assert summary["share"] == pytest.approx(1 / 3, abs=1e-6)
    assert summary["reachable_share"] == 0.5


def test_an_expired_exception_puts_the_device_back_in_scope_with_its_original_deadline():
    """Excepted until hour 90, deadline at hour 72: at hour 100 the device is overdue since
    hour 72 (not due at 90 + 72), and an install at hour 95 is late."""
    exception = AdminException("dev-x", CRITICAL.target, "frozen for audit",
                               T0 + timedelta(hours=90), "admin:bob")
    during = by_device(compute_rows(facts([device("x", now=T0 + timedelta(hours=80))],
                                          exceptions=[exception],
                                          now=T0 + timedelta(hours=80))))["x"]
    assert during["status"] == "excepted"
    after = by_device(compute_rows(facts([device("x")], exceptions=[exception])))["x"]
    assert after["status"] == "overdue" and after["in_scope"]
    assert after["deadline"] == "2026-11-05T08:00:00+00:00"
    assert after["reason"] == "overdue since 2026-11-05T08:00:00+00:00: no result reported"
    installed = by_device(compute_rows(facts([device("x")], [result("x", "installed", 95)],
                                             exceptions=[exception])))["x"]
    assert installed["status"] == "late"


def test_policy_holds_blocklist_and_deferral_are_exceptions_out_of_scope():
    blocking = Policy.from_toml('deadline_hours = { critical = 72 }\n'
                                '[blocklist]\nreleases = ["ssl"]\n', "policy")
    rows = compute_rows(facts([device("a")], policies={"web": blocking}))
    assert rows[0]["status"] == "blocklisted" and not rows[0]["in_scope"]
    deferred = by_device(compute_rows(facts([device("a")], releases=[LOW])))["a"]
    assert deferred["status"] == "deferred"
    assert deferred["reason"] == "deferred by policy until 2026-12-05T08:00:00+00:00"


def test_stage_pause_and_halt_hold_devices_in_scope_with_the_reason():
    halted = {CRITICAL.target: [rollout(CRITICAL, state=RolloutState.HALTED,
                                        reason="2 of 2 failed")]}
    [row] = compute_rows(facts([device("a")], rollouts=halted))
    assert row["status"] == "held" and row["in_scope"]
    assert row["reason"] == "held: rollout is halted (2 of 2 failed)"
    staged = {CRITICAL.target: [rollout(CRITICAL, stages=[0, 100], current_stage=0,
                                        stage_percent=0)]}
    [row] = compute_rows(facts([device("a")], rollouts=staged))
    assert row["reason"] == "held: not in the rollout's current stage (0 %)"
    held = {CRITICAL.target: [rollout(CRITICAL, held_devices=["dev-a"])]}
    rows = by_device(compute_rows(facts([device("a"), device("b")], rollouts=held)))
    assert rows["a"]["status"] == "held" and rows["a"]["in_scope"]
    assert "compatibility hold" in rows["a"]["reason"]
    assert rows["b"]["status"] != "held"


def test_pending_until_the_deadline_and_no_deadline_means_any_install_counts():
    early = T0 + timedelta(hours=10)
    [row] = compute_rows(facts([device("a", now=early)], now=early))
    assert row["status"] == "pending" and row["reason"].startswith("due 2026-11-05")
    rows = compute_rows(facts([device("a")], [result("a", "installed", 900)], policies={}))
    assert rows[0]["status"] == "compliant" and rows[0]["deadline"] is None


def test_filters_select_group_severity_and_publication_date():
    devices = [device("a"), device("b", group="db")]
    both = {r.target: [rollout(r, "web"), rollout(r, "db")] for r in (CRITICAL, LOW)}
    base = facts(devices, releases=[CRITICAL, LOW], rollouts=both)
    assert len(compute_rows(base)) == 4
    assert {r["device"] for r in compute_rows(base, Filters(group="db"))} == {"b"}
    assert {r["release"] for r in compute_rows(base, Filters(severity="low"))} == {LOW.target}
    since = Filters(since=T0 + timedelta(days=1))
    assert {r["release"] for r in compute_rows(base, since)} == {LOW.target}


def test_a_group_no_rollout_reaches_has_no_rows_and_pilot_groups_do():
    devices = [device("a"), device("p", group="canary"), device("z", group="other")]
    rollouts = {CRITICAL.target: [rollout(CRITICAL, pilot_groups=["canary"])]}
    rows = compute_rows(facts(devices, rollouts=rollouts))
    assert sorted(r["device"] for r in rows) == ["a", "p"]


def test_compliance_over_time_rises_as_installs_arrive_and_drops_nothing_back():
    from hub.compliance.over_time import shares_over_time

    devices = [device(f"d{i}") for i in range(4)]
    results = [result("d0", "installed", 1), result("d1", "installed", 30),
               result("d2", "installed", 90)]  # d2 late: never counts as compliant
    points = shares_over_time(facts(devices, results), "web", T0 - timedelta(hours=12),
                              timedelta(hours=24))
    assert [t for t, _ in points][:2] == [T0 - timedelta(hours=12), T0 + timedelta(hours=12)]
    assert [share for _, share in points] == [None, 0.25, 0.5, 0.5, 0.5]
