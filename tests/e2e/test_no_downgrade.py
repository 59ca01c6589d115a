"""No older version lands on a newer one without a signed rollback release naming it,
even when the newer one installs while the older one waits (issue 12, item 1).

Real hub (Hypercorn, TUF repository, seeder, tracker) on 127.0.0.1, real agents on
127.0.0.x, real signed policies. The attacks:

- an honest hub: 1.1 (moderate) downloads and waits in `verified` for its Sunday window;
  2.0 (critical, deadline passed) installs meanwhile; the window opens;
- a compromised hub: it withholds 1.1's payload (stops seeding it, web seed gone) while
  2.0 installs, then serves it;
- a crash between 2.0's commit and the superseding of 1.1 (real processes, SIGKILL);
- an old rollback release, re-rolled-out by the hub (the rollout key is online), aimed
  at a device on a later version the rollback release does not name.
"""

from __future__ import annotations

import shutil
import signal
from datetime import UTC, datetime, timedelta

import pytest
import trio

from agent.lifecycle import State
from hub.policy.policies import set_policy
from hub.rollouts.changes import start_rollout
from tests.e2e._crash_harness import Agent, run_until, start_hub_published
from tests.fleet import start_agent, start_hub

V10 = {"VERSION": b"1.0.0", "bin/app": b"app 1.0"}
V11 = {"VERSION": b"1.1.0", "bin/app": b"app 1.1"}
V20 = {"VERSION": b"2.0.0", "bin/app": b"app 2.0"}


def closed_window_policy() -> str:
    """A one-hour Sunday window, closed now (shifted a day when this runs on a Sunday),
    and no deadline but for critical releases, whose deadline passes at publication."""
    day = "Sat" if datetime.now(UTC).weekday() == 6 else "Sun"
    return (f'timezone = "UTC"\n[[windows]]\nname = "sunday"\nwhen = "{day} 03:00-04:00"\n'
            "[deadline_hours]\ncritical = 0\n")


class SettableClock:
    """The policy gate's wall clock: real time, until the test moves it on to the day the
    window opens (days pass without waiting for them; the policy engine has its own DST
    and window tests on MockClock)."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def next_opening(self) -> None:
        """Into the window: the next Sunday (or Saturday) 03:30 UTC."""
        now = datetime.now(UTC)
        target = 5 if now.weekday() == 6 else 6
        days = (target - now.weekday()) % 7 or 7
        self.offset = (now + timedelta(days=days)).replace(hour=3, minute=30) - now


def by_version(results):
    """(version, outcome) of each stored result (releases/NAME/VERSION/FILE)."""
    return sorted((r["release"].split("/")[2], r["outcome"]) for r in results)


def outcomes(hub, device_id):
    return by_version(r for r in hub.results() if r["device_id"] == device_id)


async def test_a_release_waiting_for_its_window_does_not_install_over_a_newer_critical_one(
    tmp_path, nursery
):
    hub = await start_hub(tmp_path, nursery)
    daemon, prefix = await start_agent(hub, nursery, "desk", "127.0.0.2")
    hub.rollout(hub.publish("app", "1.0.0", V10))
    await daemon.cycle()
    assert (prefix / "opt/app/VERSION").read_bytes() == b"1.0.0"
    (tmp_path / "lab.toml").write_text(closed_window_policy())
    set_policy(hub.hub_dir, "lab", tmp_path / "lab.toml")
    clock = SettableClock()
    daemon.gate.clock = clock

    moderate = hub.publish("app", "1.1.0", V11, severity="moderate")
    hub.rollout(moderate)
    await daemon.cycle()
    assert daemon.journal.get(moderate).state is State.VERIFIED  # downloaded, waits
    critical = hub.publish("app", "2.0.0", V20, severity="critical")
    hub.rollout(critical)
    await daemon.cycle()
    assert daemon.journal.get(critical).state is State.COMMITTED  # deadline passed: now
    assert (prefix / "opt/app/VERSION").read_bytes() == b"2.0.0"

    clock.next_opening()  # Sunday 03:30: the window 1.1 waited for is open
    for _ in range(2):
        await daemon.cycle()
    assert (prefix / "opt/app/VERSION").read_bytes() == b"2.0.0"
    assert daemon.journal.installed_version("app") == "2.0.0"
    waited = daemon.journal.get(moderate)
    assert waited.state is State.SUPERSEDED
    assert waited.reason == ("superseded, nothing changed: downgrade from the installed "
                             "2.0.0 to 1.1.0 refused (not a rollback release)")
    assert [t[1] for t in daemon.journal.transitions(moderate)][-2:] == ["verified",
                                                                         "superseded"]
    assert await daemon.deliver_results() == 0
    assert outcomes(hub, daemon.identity.device_id) == [
        ("1.0.0", "installed"), ("1.1.0", "superseded"), ("2.0.0", "installed")]
    assert daemon.gate.plans() == {}  # nothing is planned for the superseded release any more


async def test_the_downgrade_check_holds_at_the_step_itself_not_only_in_the_commit_sweep(
    tmp_path, nursery
):
    """A newer version recorded as installed without its sweep having run (as if the
    agent died between the two and nothing at start ran it): the waiting deployment
    itself refuses to go on once its window opens."""
    hub = await start_hub(tmp_path, nursery)
    daemon, prefix = await start_agent(hub, nursery, "desk", "127.0.0.2")
    (tmp_path / "lab.toml").write_text(closed_window_policy())
    set_policy(hub.hub_dir, "lab", tmp_path / "lab.toml")
    clock = SettableClock()
    daemon.gate.clock = clock
    moderate = hub.publish("app", "1.1.0", V11, severity="moderate")
    hub.rollout(moderate)
    await daemon.cycle()
    assert daemon.journal.get(moderate).state is State.VERIFIED

    newer = "releases/app/2.0.0/app-2.0.0.tar"
    daemon.journal.create(newer, "app", "2.0.0")
    for state in (State.SCHEDULED, State.DOWNLOADING, State.VERIFIED, State.SNAPSHOTTING,
                  State.INSTALLING, State.CHECKING):
        daemon.journal.transition(newer, state)
    daemon.journal.transition(newer, State.COMMITTED, installed=("app", "2.0.0"))

    clock.next_opening()
    await daemon.cycle()
    waited = daemon.journal.get(moderate)
    assert waited.state is State.SUPERSEDED
    assert "downgrade from the installed 2.0.0" in waited.reason
    assert not (prefix / "opt/app/VERSION").exists()  # 1.1 never touched the device
    assert await daemon.deliver_results() == 0
    assert outcomes(hub, daemon.identity.device_id) == [("1.1.0", "superseded")]


async def test_a_payload_withheld_while_a_newer_release_installs_never_installs_after_it(
    tmp_path, nursery
):
    hub = await start_hub(tmp_path, nursery)
    daemon, prefix = await start_agent(hub, nursery, "desk", "127.0.0.2")
    daemon.ctx.download_timeout = 4
    hub.rollout(hub.publish("app", "1.0.0", V10))
    await daemon.cycle()

    # The compromised hub withholds 1.1: its payload leaves the web seed before the hub's
    # seeder picks it up (publish does not yield to trio; the seeder looks every 2 s).
    withheld = hub.publish("app", "1.1.0", V11)
    payload = hub.hub_dir.payloads / withheld
    hidden = tmp_path / "withheld.tar"
    shutil.move(payload, hidden)
    hub.rollout(withheld)
    await daemon.cycle()
    assert daemon.journal.get(withheld).state is State.SCHEDULED  # download postponed
    newer = hub.publish("app", "2.0.0", V20)
    hub.rollout(newer)
    await daemon.cycle()
    assert daemon.journal.get(newer).state is State.COMMITTED

    shutil.move(hidden, payload)  # now the hub serves 1.1 after all
    await trio.sleep(3)  # its seeder adds it within 2 s
    for _ in range(2):
        await daemon.cycle()
    assert (prefix / "opt/app/VERSION").read_bytes() == b"2.0.0"
    assert daemon.journal.get(withheld).state is State.SUPERSEDED
    assert await daemon.deliver_results() == 0
    assert outcomes(hub, daemon.identity.device_id) == [
        ("1.0.0", "installed"), ("1.1.0", "superseded"), ("2.0.0", "installed")]


async def test_an_old_rollback_release_cannot_take_a_device_back_from_a_version_it_did_not_name(
    tmp_path, nursery
):
    hub = await start_hub(tmp_path, nursery)
    on_two, on_two_prefix = await start_agent(hub, nursery, "on-two", "127.0.0.2", "two")
    on_three, on_three_prefix = await start_agent(hub, nursery, "on-three", "127.0.0.3",
                                                  "three")
    hub.rollout(hub.publish("app", "2.0.0", V20), "two")
    await on_two.cycle()
    hub.rollout(hub.publish("app", "3.0.0", {"VERSION": b"3.0.0"}), "three")
    await on_three.cycle()
    assert (on_three_prefix / "opt/app/VERSION").read_bytes() == b"3.0.0"

    rollback = hub.publish("app", "1.0.1", {"VERSION": b"1.0.1"},
                           top_level='rollback = true\nreplaces = ["2.0.0"]\n')
    hub.rollout(rollback, "two")  # what the admin meant: take 2.0.0 back
    await on_two.cycle()
    assert (on_two_prefix / "opt/app/VERSION").read_bytes() == b"1.0.1"
    assert on_two.journal.get(rollback).state is State.COMMITTED

    hub.rollout(rollback, "three")  # the hub's online rollout key aims it at 3.0.0
    for _ in range(2):
        await on_three.cycle()
    assert on_three.journal.get(rollback) is None  # never even started
    assert (on_three_prefix / "opt/app/VERSION").read_bytes() == b"3.0.0"
    assert on_three.journal.installed_version("app") == "3.0.0"


async def test_a_rollback_release_waiting_for_its_window_is_superseded_by_a_later_fix(
    tmp_path, nursery
):
    """The rollback release names 2.0.0; while it waits, 2.0.1 (critical) installs: the
    rollback release never takes the device back from 2.0.1, which it does not name."""
    hub = await start_hub(tmp_path, nursery)
    daemon, prefix = await start_agent(hub, nursery, "desk", "127.0.0.2")
    hub.rollout(hub.publish("app", "2.0.0", V20))
    await daemon.cycle()
    (tmp_path / "lab.toml").write_text(closed_window_policy())
    set_policy(hub.hub_dir, "lab", tmp_path / "lab.toml")
    clock = SettableClock()
    daemon.gate.clock = clock
    rollback = hub.publish("app", "1.0.1", {"VERSION": b"1.0.1"}, severity="moderate",
                           top_level='rollback = true\nreplaces = ["2.0.0"]\n')
    hub.rollout(rollback)
    await daemon.cycle()
    assert daemon.journal.get(rollback).state is State.VERIFIED  # waits for Sunday
    fix = hub.publish("app", "2.0.1", {"VERSION": b"2.0.1"}, severity="critical")
    hub.rollout(fix)
    await daemon.cycle()
    assert daemon.journal.get(fix).state is State.COMMITTED

    clock.next_opening()
    for _ in range(2):
        await daemon.cycle()
    assert (prefix / "opt/app/VERSION").read_bytes() == b"2.0.1"
    waited = daemon.journal.get(rollback)
    assert waited.state is State.SUPERSEDED
    assert waited.reason == ("superseded, nothing changed: rollback release 1.0.1 may "
                             "replace only 2.0.0, not the installed 2.0.1")


@pytest.mark.slow
@pytest.mark.parametrize("crash_after", ["committed", "superseded"])
async def test_a_crash_between_the_newer_commit_and_the_superseding_installs_nothing_older(
    tmp_path, nursery, crash_after
):
    """The agent is `meisitong-agent run` in its own process, SIGKILLed by the crash-point
    hook right after 2.0's commit (before 1.1 is superseded) or right after superseding
    1.1 (before its result is delivered); by the next start the window has opened."""
    policy = tmp_path / "lab.toml"
    policy.write_text(closed_window_policy())

    def prepare(hub):
        set_policy(hub.hub_dir, "lab", policy)
        release = hub.publish("app", "1.1.0", V11, severity="moderate")
        start_rollout(hub.hub_dir, release, "lab", new_group=True)
        return release

    hub, moderate = await start_hub_published(tmp_path, nursery, prepare)
    agent = Agent(hub, "desk", "lab", tmp_path / "desk")
    await agent.enroll()

    process = await agent.start()
    with trio.fail_after(60):
        while agent.journal_rows("SELECT state FROM deployments") != [("verified",)]:
            await trio.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    await process.wait()

    critical = hub.publish("app", "2.0.0", V20, severity="critical")
    start_rollout(hub.hub_dir, critical, "lab")
    code = await run_until(agent, crash_after, timeout=90, stop_when_done=False)
    assert code == -signal.SIGKILL, f"the crash point was never reached; see {agent.home}"
    policy.write_text('timezone = "UTC"\n[[windows]]\nname = "open"\nwhen = "Daily 00:00-24:00"\n')
    set_policy(hub.hub_dir, "lab", policy)  # the window is open from now on

    # Done (every deployment ended, every result delivered): stopped by SIGTERM. Without
    # the fix 1.1 would end only by installing, over 2.0, in the open window.
    assert await run_until(agent, None, timeout=90) is None
    assert (agent.prefix / "opt/app/VERSION").read_bytes() == b"2.0.0"
    states = dict(agent.journal_rows("SELECT version, state FROM deployments"))
    assert states == {"1.1.0": "superseded", "2.0.0": "committed"}
    assert dict(agent.journal_rows("SELECT name, version FROM installed")) == {"app": "2.0.0"}
    assert by_version(agent.hub_results()) == [
        ("1.1.0", "superseded"), ("2.0.0", "installed")]
    assert agent.leftovers() == []
