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
from hub.cli import main
from hub.database import HubDatabase
from hub.forecast import THRESHOLDS, FleetDevice, GroupForecast, forecast_group
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
