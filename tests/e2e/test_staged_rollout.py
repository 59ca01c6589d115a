"""A bad release stops at the pilot stage, with real agents and a real hub: the hub's own
controller loop (HubServer → RolloutRuleRunner) halts the rollout from the agents' signed
results, every pilot device has reverted byte for byte, and the other devices — polling
the signed metadata all along — never download it.

Hub (Hypercorn + libtorrent seeder + tracker) on 127.0.0.1, agents on 127.0.0.2–7.
"""

import json

import trio

from agent.lifecycle import State
from agent.policy.gate import NotEligibleYet
from agent.start_recovery import prepare_start
from hub.database import HubDatabase
from hub.rollouts.changes import RolloutAction, change_rollout, start_rollout
from hub.rollouts.rules import RolloutPlan
from tests.fleet import sha256, start_agent, start_hub, tree_state

OLD = {"VERSION": b"1.0.0", "bin/app": b"#!/bin/sh\necho old\n"}
NEW = {"VERSION": b"2.0.0", "bin/app": b"#!/bin/sh\necho new\n"}
# The signed health check expects the old VERSION: the new release fails it everywhere.
FAILING_HEALTH = (
    '[[health]]\ntype = "file-hash"\npath = "/opt/app/VERSION"\n'
    f'sha256 = "{sha256(b"1.0.0")}"\nretries = 0\ninterval = 0\n'
)


def rollout_state(hub, release):
    database = HubDatabase(hub.hub_dir.database)
    try:
        [row] = database.query("SELECT state, stage_percent FROM rollouts WHERE release = ?",
                               (release,))
        audit = [dict(r) for r in database.query(
            "SELECT actor, action, detail FROM audit WHERE action LIKE 'rollout.%' ORDER BY id")]
    finally:
        database.close()
    return row["state"], row["stage_percent"], audit


async def test_release_failing_health_everywhere_halts_at_pilot_and_others_never_download(
    tmp_path, nursery
):
    hub = await start_hub(tmp_path, nursery)
    agents = []
    for number in range(6):
        daemon, prefix = await start_agent(hub, nursery, f"a{number}", f"127.0.0.{number + 2}")
        for name, data in OLD.items():
            (prefix / "opt/app" / name).parent.mkdir(parents=True, exist_ok=True)
            (prefix / "opt/app" / name).write_bytes(data)
        agents.append((daemon, prefix, tree_state(prefix)))
    pilots, others = agents[:2], agents[2:]

    release = hub.publish("app", "2.0.0", NEW, FAILING_HEALTH)
    # Stage 1 holds the two explicit pilot devices only (0 %), then half, then everyone;
    # the default rules otherwise (SPRT, 98 %, N=20, 1 h soak).
    plan = RolloutPlan(stages=(0, 50, 100),
                       pilot_devices=tuple(d.identity.device_id for d, _, _ in pilots))
    start_rollout(hub.hub_dir, release, "lab", plan)

    for daemon, _, _ in others:  # they see the rollout, and that they are not in it
        await daemon.cycle()
    for daemon, _, _ in pilots:
        await daemon.cycle()
        assert await daemon.deliver_results() == 0

    with trio.fail_after(30):  # the hub's controller loop looks every 2 s
        while rollout_state(hub, release)[0] != "halted":
            await trio.sleep(0.2)

    for daemon, _, _ in others:  # polling again after the halt
        await daemon.cycle()

    for daemon, prefix, before in pilots:
        [deployment] = daemon.journal.deployments()
        assert deployment.state is State.REVERTED
        assert tree_state(prefix) == before
    for daemon, prefix, before in others:
        assert daemon.journal.deployments() == []
        downloads = daemon.state.downloads
        assert not downloads.exists() or not any(p.is_file() for p in downloads.rglob("*"))
        assert tree_state(prefix) == before
    assert sorted(r["outcome"] for r in hub.results()) == ["reverted", "reverted"]

    state, percent, audit = rollout_state(hub, release)
    assert (state, percent) == ("halted", 0)
    [halt] = [row for row in audit if row["action"] == "rollout.halt"]
    assert halt["actor"] == "controller"
    assert "2 failures in the first 2 results" in json.loads(halt["detail"])["reason"]


class WindowNotOpenYet:
    """Stands in for the policy gate of a device whose maintenance window has not opened:
    the release may download, but not install until `opened` (the policy engine has its
    own tests; here only the timing matters)."""

    def __init__(self) -> None:
        self.opened = False

    async def wait_for_install(self, release, info):
        if not self.opened:
            raise NotEligibleYet(release, "maintenance window opens later", None)

    async def wait_for_reboot(self, release, info):
        return None

    async def finished(self, release):
        return None


async def test_a_pilot_that_downloaded_before_the_halt_does_not_install_after_it(
    tmp_path, nursery
):
    hub = await start_hub(tmp_path, nursery)
    agents = [await start_agent(hub, nursery, f"a{n}", f"127.0.0.{n + 2}") for n in range(3)]
    (waiting, waiting_prefix), *failing = agents
    window = WindowNotOpenYet()
    waiting.ctx.gate = window
    release = hub.publish("app", "2.0.0", NEW, FAILING_HEALTH)
    plan = RolloutPlan(stages=(0, 100),
                       pilot_devices=tuple(d.identity.device_id for d, _ in agents))
    start_rollout(hub.hub_dir, release, "lab", plan)

    await waiting.cycle()  # downloads, then waits for its window
    [parked] = waiting.journal.deployments()
    assert parked.state is State.VERIFIED
    for daemon, _ in failing:
        await daemon.cycle()
        await daemon.deliver_results()
    with trio.fail_after(30):
        while rollout_state(hub, release)[0] != "halted":
            await trio.sleep(0.2)

    window.opened = True
    await waiting.cycle()
    await waiting.cycle()
    [still] = waiting.journal.deployments()
    assert still.state is State.VERIFIED  # never installed
    assert tree_state(waiting_prefix) == {}


async def test_a_snapshot_interrupted_before_a_halt_does_not_install_after_the_restart(
    tmp_path, nursery
):
    """Snapshotting changes nothing on the device: a deployment found there at start waits,
    like one in verified, for the refreshed rollout to say it may go on."""
    hub = await start_hub(tmp_path, nursery)
    daemon, prefix = await start_agent(hub, nursery, "a0", "127.0.0.2")
    window = WindowNotOpenYet()
    daemon.ctx.gate = window
    release = hub.publish("app", "2.0.0", NEW)
    start_rollout(hub.hub_dir, release, "lab",
                  RolloutPlan(stages=(0, 100), pilot_devices=(daemon.identity.device_id,)))
    await daemon.cycle()  # downloads, then waits for its window
    [parked] = daemon.journal.deployments()
    assert parked.state is State.VERIFIED
    # The window opened and the snapshot began; the agent stopped before it was taken
    # (journaled as snapshotting, as a crash there leaves it). Meanwhile the admin pauses.
    daemon.journal.transition(parked.release, State.SNAPSHOTTING)
    change_rollout(hub.hub_dir, release, "lab", RolloutAction.PAUSE, reason="bad reports")
    window.opened = True

    await daemon.cycle()
    await daemon.cycle()

    [still] = daemon.journal.deployments()
    assert still.state in (State.SNAPSHOTTING, State.VERIFIED)  # never installed
    assert tree_state(prefix) == {}


async def test_waiting_for_a_window_across_many_restarts_is_no_state_loop(tmp_path, nursery):
    """Each start finding the deployment in verified is counted, but the step then ends
    (not now: the window is closed) without the agent dying, which drops the count: only
    starts that die in the same step, one after the other, are a loop."""
    hub = await start_hub(tmp_path, nursery)
    daemon, prefix = await start_agent(hub, nursery, "a0", "127.0.0.2")
    window = WindowNotOpenYet()
    daemon.ctx.gate = window
    release = hub.publish("app", "2.0.0", NEW)
    start_rollout(hub.hub_dir, release, "lab",
                  RolloutPlan(stages=(0, 100), pilot_devices=(daemon.identity.device_id,)))
    await daemon.cycle()
    for _restart in range(daemon.ctx.max_boots + 3):
        prepare_start(daemon.ctx)  # what each start of the daemon does first
        await daemon.cycle()
        [parked] = daemon.journal.deployments()
        assert parked.state is State.VERIFIED, parked.reason
    window.opened = True
    await daemon.cycle()
    [done] = daemon.journal.deployments()
    assert done.state is State.COMMITTED
    assert (prefix / "opt/app/VERSION").read_bytes() == NEW["VERSION"]
