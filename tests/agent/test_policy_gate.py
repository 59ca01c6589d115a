"""Weeks of schedule on trio's MockClock: the real PolicyGate, a real journal, sleeping
exactly until the planned time. Each test covers days to weeks in well under a second."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import trio

from agent.journal import Journal
from agent.policy.clock import TrioWallClock, sleep_until
from agent.policy.gate import NotEligibleYet
from hub.database import HubDatabase
from tests.agent._policy_sim import (
    StoreLeases,
    new_gate,
    release_info,
    run_device,
    update,
)

BERLIN = 'timezone = "Europe/Berlin"\n'
NIGHTS = '[[windows]]\nname = "night"\nwhen = "Daily 03:00-04:00"\n'
BERLIN_NIGHTS = BERLIN + NIGHTS


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


@pytest.mark.parametrize(("start", "offsets"), [
    # Berlin springs forward on 2024-03-31 (03:00 local = 02:00 UTC before, 01:00 UTC after)
    (utc(2024, 3, 25), [2] * 6 + [1] * 8),
    # ... and falls back on 2024-10-27 (03:00 local = 01:00 UTC before, 02:00 UTC after).
    (utc(2024, 10, 21), [1] * 6 + [2] * 8),
])
async def test_across_a_dst_change_installs_keep_to_the_local_window(
        tmp_path, autojump_clock, start, offsets):
    clock = TrioWallClock(start)
    device = new_gate(tmp_path, "berlin", clock, BERLIN_NIGHTS)
    installed_at = []
    for day in range(14):
        release, info = release_info(version=f"1.{day}", published=clock.now())
        await run_device(device, release, info)
        installed_at.append(device.installed[-1][0])
        await sleep_until(clock, start + timedelta(days=day + 1))
    assert [at.hour for at in installed_at] == offsets
    berlin = ZoneInfo("Europe/Berlin")
    assert {at.astimezone(berlin).strftime("%H:%M") for at in installed_at} == {"03:00"}
    assert device.wakeups == 14  # one sleep per release: straight to its window


async def test_a_window_crossing_midnight_is_found_from_either_side(
        tmp_path, autojump_clock):
    policy = '[[windows]]\nname = "friday-night"\nwhen = "Fri 22:00-02:00"\n'
    clock = TrioWallClock(utc(2024, 6, 5, 12))  # Wednesday
    device = new_gate(tmp_path, "late", clock, policy)
    release, info = release_info(published=clock.now())
    await run_device(device, release, info)
    assert device.installed[0][0] == utc(2024, 6, 7, 22)
    # Past midnight, the window opened the day before is still open.
    clock2 = TrioWallClock(utc(2024, 6, 15, 1, 30))  # Saturday 01:30
    other = new_gate(tmp_path, "early", clock2, policy)
    await run_device(other, release, info)
    assert other.installed[0][0] == utc(2024, 6, 15, 1, 30)


async def test_a_deadline_that_passes_while_the_device_is_off_installs_on_start(
        tmp_path, autojump_clock):
    policy = ('timezone = "Europe/Berlin"\n[deadline_hours]\ncritical = 72\n'
              '[[windows]]\nname = "weekend"\nwhen = "Sun 02:00-05:00"\n')
    clock = TrioWallClock(utc(2024, 6, 3, 7))  # Monday 09:00 Berlin
    release, info = release_info(severity="critical", published=clock.now())
    device = new_gate(tmp_path, "laptop", clock, policy)
    with trio.move_on_after(3600):  # on for an hour, then switched off
        await run_device(device, release, info)
    plans = json.loads(Journal(tmp_path / "laptop.db").status()["plans"][0])
    assert plans[release]["text"] == (
        "next: Thu 08:00 Europe/Berlin (deadline), deadline Thu 09:00")
    await sleep_until(clock, utc(2024, 6, 7, 6))  # off until Friday 08:00 Berlin
    restarted = new_gate(tmp_path, "laptop", clock, policy)  # same journal
    await run_device(restarted, release, info)
    assert restarted.installed[0][0] == utc(2024, 6, 7, 6)  # at once, outside the window
    assert restarted.wakeups == 0


async def test_a_deferral_expires_then_the_release_downloads_and_waits_for_a_window(
        tmp_path, autojump_clock):
    policy = BERLIN + "[deferral]\ndays = 30\n" + NIGHTS
    clock = TrioWallClock(utc(2024, 6, 3, 12))
    release, info = release_info(published=clock.now())
    device = new_gate(tmp_path, "desk", clock, policy)
    await run_device(device, release, info)
    assert device.admitted_at == utc(2024, 7, 3, 12)  # not downloaded before
    assert device.installed[0][0] == utc(2024, 7, 4, 1)  # then the next night window
    # Woken by each weekly metadata refresh (4), the deferral's end, the window: no polling.
    assert device.wakeups == 6


async def test_a_blocklisted_driver_never_installs(tmp_path, autojump_clock):
    policy = (BERLIN + '[blocklist]\ncategories = ["driver*"]\n[deadline_hours]\ncritical = 1\n'
              + NIGHTS)
    clock = TrioWallClock(utc(2024, 6, 3))
    release, info = release_info("nvidia", severity="critical", category="driver-gpu",
                                 published=clock.now())
    device = new_gate(tmp_path, "gpu", clock, policy)
    with trio.move_on_after(8 * 7 * 86400):
        await run_device(device, release, info, poll=86400)
    assert device.admitted_at is None and device.installed == []
    plans = device.gate.plans()
    assert plans[release]["text"] == "blocked: blocklisted by category pattern 'driver*'"
    assert device.wakeups == 56  # once per metadata refresh (daily here), nothing more


async def test_a_paused_group_installs_nothing_until_the_pause_is_lifted(
        tmp_path, autojump_clock):
    clock = TrioWallClock(utc(2024, 6, 3))
    release, info = release_info(severity="critical", published=clock.now())
    device = new_gate(tmp_path, "paused", clock, "paused = true\n" + BERLIN_NIGHTS)

    async def lift_pause_after_three_weeks():
        await trio.sleep(21 * 86400)
        device.gate.apply(update(BERLIN_NIGHTS))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(lift_pause_after_three_weeks)
        await run_device(device, release, info, poll=86400)
    assert device.admitted_at == utc(2024, 6, 24)  # re-planned at once on the new policy
    assert device.installed[0][0] == utc(2024, 6, 24, 1)


async def test_a_policy_change_replans_a_waiting_deployment_at_once(
        tmp_path, autojump_clock):
    clock = TrioWallClock(utc(2024, 6, 3, 12))
    release, info = release_info(published=clock.now())
    device = new_gate(tmp_path, "desk", clock,
                      '[[windows]]\nname = "sunday"\nwhen = "Sun 01:00-02:00"\n')
    with pytest.raises(NotEligibleYet):
        await device.gate.wait_for_install(release, info)
    assert device.gate.seconds_until_next(3600) == 3600  # Sunday is days away
    device.gate.apply(update('[[windows]]\nname = "now"\nwhen = "Daily 00:00-24:00"\n'))
    assert device.gate.seconds_until_next(3600) == 0
    await device.gate.wait_for_install(release, info)  # no exception: allowed now


async def reboot_when_allowed(gate, release, info, poll: float = 86400.0) -> int:
    """Ask as the daemon does: on NotEligibleYet sleep with `gate.sleep`; count asks."""
    asks = 1
    while True:
        try:
            await gate.wait_for_reboot(release, info)
            return asks
        except NotEligibleYet:
            asks += 1
            await gate.sleep(poll)


async def test_a_reboot_waits_for_the_window_without_holding_the_caller(tmp_path,
                                                                       autojump_clock):
    policy = ('[deadline_hours]\ncritical = 1\n'
              '[[windows]]\nname = "weekend"\nwhen = "Sun 02:00-05:00"\n')
    clock = TrioWallClock(utc(2024, 6, 4, 12))  # Tuesday, deadline passed
    release, info = release_info(severity="critical", published=utc(2024, 6, 3))
    device = new_gate(tmp_path, "srv", clock, policy)
    await device.gate.wait_for_install(release, info)  # installs now ...
    with pytest.raises(NotEligibleYet) as waiting:  # ... and says at once when to reboot
        await device.gate.wait_for_reboot(release, info)
    assert waiting.value.at == utc(2024, 6, 9, 2)
    assert clock.now() == utc(2024, 6, 4, 12)  # nothing waited in place
    await reboot_when_allowed(device.gate, release, info)
    assert clock.now() == utc(2024, 6, 9, 2)  # ... reboots on Sunday


async def test_at_most_k_devices_of_a_group_install_at_once(tmp_path, autojump_clock):
    policy = ("[disruption]\nmax_concurrent = 2\nlease_minutes = 30\n"
              '[[windows]]\nname = "night"\nwhen = "Daily 01:00-05:00"\n')
    database = tmp_path / "hub.db"
    HubDatabase.create(database).close()
    clock = TrioWallClock(utc(2024, 6, 3, 12))
    release, info = release_info(published=clock.now())
    budget = update(policy).policy.disruption
    devices = [new_gate(tmp_path, f"node{i}", clock, policy,
                        leases=StoreLeases(database, f"dev-node{i}", budget, clock))
               for i in range(7)]
    async with trio.open_nursery() as nursery:
        for device in devices:
            nursery.start_soon(run_device, device, release, info, 7 * 86400.0, 20.0)
    spans = [device.installed[0] for device in devices]
    for start, _ in spans:
        assert sum(1 for s, e in spans if s <= start < e) <= 2
    assert max(end for _, end in spans) <= utc(2024, 6, 4, 3)  # 4 rounds of 20 min + retries


async def test_without_a_lease_nothing_installs_and_the_reason_is_journaled(
        tmp_path, autojump_clock):
    from agent.device_identity import DeviceIdentity
    from agent.lease_client import LeaseClient
    from tests.fleet import free_port

    identity = DeviceIdentity.load_or_create(tmp_path / "key")
    unreachable = LeaseClient(f"http://127.0.0.1:{free_port('127.0.0.1')}", identity, 2)
    clock = TrioWallClock(utc(2024, 6, 3, 12))
    release, info = release_info(published=clock.now())
    device = new_gate(tmp_path, "lonely", clock, "[disruption]\nmax_concurrent = 1\n",
                      leases=unreachable)
    with pytest.raises(NotEligibleYet, match="cannot reach the hub"):
        await device.gate.wait_for_install(release, info)
    assert "waiting for a disruption-budget lease" in device.gate.plans()[release]["text"]
    assert 0 < device.gate.seconds_until_next(3600) <= 30


async def test_a_lease_shorter_than_the_renewal_nap_is_renewed_in_time(tmp_path,
                                                                       autojump_clock):
    """30 s leases while the renewal loop was napping its idle 60 s: the first lease
    expired mid-install and a second device installed beside the first."""
    policy = "[disruption]\nmax_concurrent = 1\nlease_minutes = 0.5\n"
    database = tmp_path / "hub.db"
    HubDatabase.create(database).close()
    clock = TrioWallClock(utc(2024, 6, 3, 12))
    release, info = release_info(published=clock.now())
    budget = update(policy).policy.disruption
    first, second = (new_gate(tmp_path, name, clock, policy,
                              leases=StoreLeases(database, f"dev-{name}", budget, clock))
                     for name in ("first", "second"))
    async with trio.open_nursery() as nursery:
        await nursery.start(first.gate.run)
        await trio.sleep(5)  # the loop is napping, with nothing held yet
        await first.gate.wait_for_install(release, info)
        nursery.start_soon(run_device, second, release, info, 10.0, 1.0)
        await trio.sleep(600)  # a ten-minute install
        assert second.installed == [], "the budget of 1 was exceeded"
        await first.gate.finished(release)
        await trio.sleep(3 * 60)  # its next try (10 s) and its one-minute install
        assert second.installed, "the lease given back lets the next device go"
        nursery.cancel_scope.cancel()


async def test_a_refused_renewal_drops_the_lease_and_the_reboot_waits_for_a_new_one(
        tmp_path, autojump_clock):
    policy = "[disruption]\nmax_concurrent = 1\nlease_minutes = 30\n"
    database = tmp_path / "hub.db"
    HubDatabase.create(database).close()
    clock = TrioWallClock(utc(2024, 6, 3, 12))
    release, info = release_info(published=clock.now())
    budget = update(policy).policy.disruption
    device = new_gate(tmp_path, "node", clock, policy,
                      leases=StoreLeases(database, "dev-node", budget, clock))
    other = StoreLeases(database, "dev-other", budget, clock)
    async with trio.open_nursery() as nursery:
        await nursery.start(device.gate.run)
        await device.gate.wait_for_install(release, info)
        assert device.gate.holds_lease(release)
        # The hub loses the lease (an admin cleared it, a restored backup) and another
        # device takes the budget: the renewal is refused.
        hub = HubDatabase(database)
        hub.query("DELETE FROM leases WHERE device_id = 'dev-node'")
        hub.close()
        assert (await other.acquire("office", "", "other-release", 1800)).granted
        await trio.sleep(15 * 60)  # renewed after a third of the 30 minutes
        assert not device.gate.holds_lease(release)

        rebooted_at = []

        async def reboot() -> None:
            await reboot_when_allowed(device.gate, release, info, poll=60.0)
            rebooted_at.append(clock.now())

        nursery.start_soon(reboot)
        await trio.sleep(10 * 60)  # the other lease runs until 12:30
        assert rebooted_at == [], "no reboot without a lease"
        await other.release("office", "", "other-release")
        await trio.sleep(120)
        assert rebooted_at, "the reboot goes ahead once the budget has room"
        nursery.cancel_scope.cancel()
