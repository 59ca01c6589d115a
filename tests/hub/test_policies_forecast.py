"""`meisitong-hub plan`: the forecast against a MockClock run of the same fleet (real
gates, real journals, the hub's real lease store), and the CLI over a real hub."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import trio
from click.testing import CliRunner

from agent.policy import DeviceFacts, Policy, ReleaseFacts
from agent.policy.clock import TrioWallClock
from agent.wire.release import Severity
from hub.cli.main import main
from hub.database import HubDatabase
from hub.policy.forecast import THRESHOLDS, FleetDevice, GroupForecast, forecast_group
from tests.agent._policy_sim import StoreLeases, new_gate, release_info, run_device
from tests.fleet import ServedHub

NOW = datetime(2024, 10, 23, 9, 30, tzinfo=UTC)  # a Wednesday; Berlin leaves DST on Sunday
PUBLISHED = NOW - timedelta(hours=20)
INSTALL_MINUTES = 15.0
FLEET = {
    # group: (policy, devices)
    "berlin": ('timezone = "Europe/Berlin"\njitter_minutes = 45\n'
               "[disruption]\nmax_concurrent = 3\nlease_minutes = 30\n"
               '[[windows]]\nname = "night"\nwhen = "Daily 02:00-04:00"\n', 14),
    "newyork": ('timezone = "America/New_York"\n[deadline_hours]\nmoderate = 80\n'
                '[[windows]]\nname = "weekend"\nwhen = "Sat,Sun 00:00-06:00"\n', 9),
    "tokyo": ('timezone = "Asia/Tokyo"\n[deferral]\ndays = 3\n'
              "[disruption]\nmax_concurrent = 1\n"
              '[[windows]]\nname = "lunch"\nwhen = "Mon-Fri 12:00-13:00"\n', 5),
    "frozen": ("paused = true\n", 2),
}


async def simulate(tmp_path, group, policy_text, count) -> GroupForecast:
    database = tmp_path / f"{group}.db"
    HubDatabase.create(database).close()
    clock = TrioWallClock(NOW)
    budget = Policy.from_toml(policy_text, group).disruption
    release, info = release_info(published=PUBLISHED)
    devices = [new_gate(tmp_path, f"{group}{i}", clock, policy_text,
                        leases=StoreLeases(database, f"dev-{group}{i}", budget, clock))
               for i in range(count)]
    with trio.move_on_after(30 * 86400):
        async with trio.open_nursery() as nursery:
            for device in devices:
                nursery.start_soon(run_device, device, release, info, 86400.0, INSTALL_MINUTES)
    result = GroupForecast(group, count)
    for device in devices:
        if device.installed:
            result.installed_at[f"dev-{device.name}"] = device.installed[0][1]
    return result


@pytest.mark.parametrize("group", sorted(FLEET))
async def test_the_forecast_matches_a_mock_clock_run_of_the_same_fleet(
        tmp_path, autojump_clock, group):
    policy_text, count = FLEET[group]
    release, _ = release_info(published=PUBLISHED)
    facts = ReleaseFacts(release, "demo-app", "1.0", Severity.MODERATE, "application",
                         PUBLISHED)
    fleet = [FleetDevice(DeviceFacts(f"dev-{group}{i}")) for i in range(count)]
    forecast = forecast_group(group, Policy.from_toml(policy_text, group), facts, fleet, NOW,
                              INSTALL_MINUTES)
    simulated = await simulate(tmp_path, group, policy_text, count)
    for percent in THRESHOLDS:
        predicted, happened = forecast.reach(percent), simulated.reach(percent)
        if predicted is None or happened is None:
            assert predicted is happened is None, percent
            continue
        # Devices refused a lease ask again within 30 s: that is all the slack there is.
        assert abs(predicted - happened) <= timedelta(minutes=1), (percent, predicted, happened)
    if group == "frozen":
        assert forecast.reach(50) is None and len(forecast.never) == 2
    else:
        assert forecast.reach(100) is not None


def test_plan_forecasts_each_rolled_out_group_and_names_who_will_not_install(tmp_path):
    hub_dir = tmp_path / "hub"
    assert CliRunner().invoke(main, ["init", "--dir", str(hub_dir)]).exit_code == 0
    from hub.hub_dir import HubDir

    served = ServedHub(HubDir(hub_dir), "http://unused", "", tmp_path)
    served.publish("demo-app", "1.0.0", {"bin/app": b"x"})
    now = datetime.now(UTC)
    database = HubDatabase(hub_dir / "hub.db")
    with database.transaction() as db:
        for name, group, seen in [("b1", "berlin", now), ("b2", "berlin", now),
                                  ("b3", "berlin", now - timedelta(days=40)),
                                  ("f1", "frozen", now)]:
            db.execute(
                "INSERT INTO devices (device_id, public_key, name, hostname, grp, site, labels,"
                " status, enrolled_at, last_seen) VALUES (?, ?, ?, 'h', ?, 's', '{}', "
                "'accepted', ?, ?)", (f"dev-{name}", b"k" * 32, name, group, seen.isoformat(),
                                      seen.isoformat()))
    database.close()
    for group in ("berlin", "frozen"):
        (tmp_path / f"{group}.toml").write_text(FLEET[group][0])
        result = CliRunner().invoke(main, ["policy", "set", "--dir", str(hub_dir), group,
                                           str(tmp_path / f"{group}.toml")])
        assert result.exit_code == 0, result.output
        served.rollout("demo-app", group)
    result = CliRunner().invoke(main, ["plan", "--dir", str(hub_dir), "demo-app", "--json"])
    assert result.exit_code == 0, result.output
    report = {g["group"]: g for g in json.loads(result.output)["groups"]}
    berlin = report["berlin"]
    assert berlin["devices"] == 3 and berlin["reach"]["50"] is not None
    assert berlin["reach"]["100"] is None  # b3 has not been seen for 40 days
    assert berlin["never"] == {"b3": "not seen for 14 days"}
    assert report["frozen"]["never"] == {"f1": "the group's policy is paused"}
    table = CliRunner().invoke(main, ["plan", "--dir", str(hub_dir), "demo-app"])
    assert table.exit_code == 0 and "b3 will not install" in table.output


def test_plan_counts_results_already_in_pilots_and_every_later_stage(tmp_path):
    """A 2 % / 25 % / 100 % rollout over 12 devices: the plan used to call a group with
    results in 'not done', pilots 'never', and everyone past the current stage 'never'."""
    from agent.rollout_selection import rollout_bucket
    from hub.hub_dir import HubDir
    from hub.rollouts.changes import start_rollout
    from hub.rollouts.rules import RolloutPlan, RolloutRules

    hub_dir = tmp_path / "hub"
    assert CliRunner().invoke(main, ["init", "--dir", str(hub_dir)]).exit_code == 0
    served = ServedHub(HubDir(hub_dir), "http://unused", "", tmp_path)
    target = served.publish("demo-app", "1.0.0", {"bin/app": b"x"})
    now = datetime.now(UTC)
    names = [f"n{i}" for i in range(12)]
    database = HubDatabase(hub_dir / "hub.db")
    with database.transaction() as db:
        for name in names:
            db.execute(
                "INSERT INTO devices (device_id, public_key, name, hostname, grp, site, labels,"
                " status, enrolled_at, last_seen) VALUES (?, ?, ?, 'h', 'lab', 's', '{}', "
                "'accepted', ?, ?)", (f"dev-{name}", b"k" * 32, name, now.isoformat(),
                                      now.isoformat()))
    database.close()
    by_bucket = sorted(names, key=lambda n: rollout_bucket(f"dev-{n}", target))
    pilot, done = by_bucket[-1], by_bucket[-2]  # both far outside the 2 % stage by bucket
    rules = RolloutRules(min_results=2, soak_seconds=3600)
    start_rollout(HubDir(hub_dir), target, "lab",
                  RolloutPlan(stages=(2, 25, 100), rules=rules, pilot_devices=(pilot,)))
    database = HubDatabase(hub_dir / "hub.db")
    with database.transaction() as db:
        db.execute(
            "INSERT INTO results (record_id, device_id, release, outcome, reason, started_at, "
            "finished_at, received_at, body) VALUES ('0000aaaa', ?, ?, 'installed', '', ?, ?,"
            " ?, x'')", (f"dev-{done}", target, now.isoformat(), now.isoformat(),
                          now.isoformat()))
    database.close()
    result = CliRunner().invoke(main, ["plan", "--dir", str(hub_dir), "demo-app", "--json"])
    assert result.exit_code == 0, result.output
    [lab] = json.loads(result.output)["groups"]
    assert lab["devices"] == 12 and lab["installed"] >= 1
    assert lab["never"] == {}, lab["never"]  # pilots and later stages all have a time
    assert all(lab["reach"][str(p)] is not None for p in THRESHOLDS)
    reach_100 = datetime.fromisoformat(lab["reach"]["100"])
    assert reach_100 >= now + timedelta(hours=2)  # two soaks before the final stage


def test_plan_leaves_later_stages_of_a_manual_rollout_at_never_saying_why(tmp_path):
    from hub.hub_dir import HubDir
    from hub.rollouts.changes import start_rollout
    from hub.rollouts.rules import RolloutPlan, RolloutRules

    hub_dir = tmp_path / "hub"
    assert CliRunner().invoke(main, ["init", "--dir", str(hub_dir)]).exit_code == 0
    served = ServedHub(HubDir(hub_dir), "http://unused", "", tmp_path)
    target = served.publish("demo-app", "1.0.0", {"bin/app": b"x"})
    now = datetime.now(UTC)
    database = HubDatabase(hub_dir / "hub.db")
    with database.transaction() as db:
        for i in range(6):
            db.execute(
                "INSERT INTO devices (device_id, public_key, name, hostname, grp, site, labels,"
                " status, enrolled_at, last_seen) VALUES (?, ?, ?, 'h', 'lab', 's', '{}', "
                "'accepted', ?, ?)", (f"dev-m{i}", b"k" * 32, f"m{i}", now.isoformat(),
                                      now.isoformat()))
    database.close()
    start_rollout(HubDir(hub_dir), target, "lab",
                  RolloutPlan(stages=(1, 100), rules=RolloutRules(automatic=False)))
    result = CliRunner().invoke(main, ["plan", "--dir", str(hub_dir), "demo-app", "--json"])
    [lab] = json.loads(result.output)["groups"]
    assert lab["never"] and all("needs `rollout advance`" in why
                                for why in lab["never"].values())
