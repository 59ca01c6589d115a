"""A policy or assignment the signed metadata lists but the agent cannot fetch or verify
puts the device on hold (issue 12, attack 2: a hub answering 404 for that one file undid
the admin's signed pause, or re-assignment, and the device installed).

Real hub (in-process HubServer, real HTTP, real TUF metadata) and the real daemon
parts. The attacker owns the hub server but not the offline keys: it cannot forge a
policy, so it deletes the served file and the hub answers 404 for it.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
import trio
from click.testing import CliRunner

from agent.cli import main as agent_main
from agent.config import AgentConfig
from agent.daemon import AgentDaemon
from agent.policy.clock import TrioWallClock, sleep_until
from agent.policy.gate import NotEligibleYet
from agent.policy.hold import PolicyHold
from hub.hub_dir import HubDir
from hub.policy.policies import assign_group, set_policy
from hub.repository.tuf_repository import HubRepository, ReleaseTargetEntry
from hub.rollouts.changes import start_rollout
from tests.agent._policy_sim import new_gate, release_info, update
from tests.fleet import ServedHub, start_agent, start_hub


def write(path, text):
    path.write_text(text)
    return path


def hide_served(hub: ServedHub, name: str) -> list[tuple[object, bytes]]:
    """As the attacker: delete every served copy of target NAME; the hub answers 404."""
    hidden = []
    for path in HubDir(hub.hub_dir.root).targets.rglob(f"*.{name}"):
        hidden.append((path, path.read_bytes()))
        path.unlink()
    assert hidden, name
    return hidden


def restore(hidden) -> None:
    for path, data in hidden:
        path.write_bytes(data)


def status_output(config_file) -> str:
    result = CliRunner().invoke(agent_main, ["status", "--config", str(config_file)])
    assert result.exit_code == 0, result.output
    return result.output


async def test_a_signed_pause_the_hub_hides_holds_the_device_and_status_says_why(
        tmp_path, nursery):
    hub = await start_hub(tmp_path, nursery)
    daemon, prefix = await start_agent(hub, nursery, "desk", "127.0.0.2")
    set_policy(hub.hub_dir, "lab", write(tmp_path / "open.toml", 'timezone = "UTC"\n'))
    await daemon.cycle()
    assert not daemon.gate.policy.paused
    # The admin signs a pause; the hub then answers 404 for the new policy file.
    set_policy(hub.hub_dir, "lab", write(tmp_path / "pause.toml", "paused = true\n"))
    hidden = hide_served(hub, "lab.toml")
    release = hub.publish("app", "1.0.0", {"bin/app": b"new"})
    hub.rollout(release, "lab")
    await daemon.cycle()
    assert not (prefix / "opt/app/bin/app").exists()  # before the fix: installed
    assert daemon.journal.get(release) is None  # nothing new started
    assert daemon.gate.hold is not None and daemon.gate.hold.file == "policies/lab.toml"
    assert daemon.gate.group == "lab"
    assert daemon.gate.plans()[release]["text"].startswith("held: policies/lab.toml")
    output = status_output(tmp_path / "desk/agent.toml")
    hold_line = next(line for line in output.splitlines() if line.startswith("hold "))
    assert "policies/lab.toml: listed in the signed metadata but cannot be fetched or " \
        "verified" in hold_line
    assert "HTTP 404" in hold_line and "nothing new starts until it verifies" in hold_line
    # A restart comes back held (journaled), before any refresh.
    restarted = AgentDaemon(AgentConfig.load(tmp_path / "desk/agent.toml"))
    assert restarted.gate.hold is not None
    assert restarted.gate.hold.file == "policies/lab.toml"
    restarted.journal.close()
    # More cycles change nothing while the file is hidden; the hold keeps its start.
    since = daemon.gate.hold.since
    await trio.sleep(1.1)
    await daemon.cycle()
    assert daemon.journal.get(release) is None
    assert daemon.gate.hold is not None and daemon.gate.hold.since == since
    # The file verifies again: the hold ends and the admin's pause is in force.
    restore(hidden)
    await daemon.cycle()
    assert daemon.gate.hold is None and daemon.gate.policy.paused
    assert daemon.journal.get(release) is None
    assert daemon.gate.plans()[release]["text"] == "paused: the group's policy is paused"
    assert not any(line.startswith("hold ") for line in
                   status_output(tmp_path / "desk/agent.toml").splitlines())
    nursery.cancel_scope.cancel()
    await trio.sleep(0)


async def test_a_hidden_group_reassignment_keeps_the_last_signed_group_and_holds(
        tmp_path, nursery):
    hub = await start_hub(tmp_path, nursery)
    daemon, prefix = await start_agent(hub, nursery, "srv", "127.0.0.2", group="lab")
    assign_group(hub.hub_dir, daemon.identity.device_id, "servers", new_group=True)
    await daemon.cycle()
    assert daemon.gate.group == "servers"
    # The admin moves the device into "vault"; the hub answers 404 for the assignment.
    # agent.toml's group "lab" has a rollout and no policy: falling back would install.
    assign_group(hub.hub_dir, daemon.identity.device_id, "vault", new_group=True)
    hide_served(hub, f"{daemon.identity.device_id}.json")
    release = hub.publish("app", "1.0.0", {"bin/app": b"new"})
    start_rollout(hub.hub_dir, release, "lab", new_group=True)
    start_rollout(hub.hub_dir, release, "servers", new_group=True)
    await daemon.cycle()
    assert daemon.gate.group == "servers"  # kept, not agent.toml's "lab"
    assert daemon.gate.hold is not None
    assert daemon.gate.hold.file == f"assignments/{daemon.identity.device_id}.json"
    assert daemon.journal.get(release) is None
    assert not (prefix / "opt/app/bin/app").exists()
    assert f"assignments/{daemon.identity.device_id}.json: listed in the signed metadata" \
        in status_output(tmp_path / "srv/agent.toml")
    nursery.cancel_scope.cancel()
    await trio.sleep(0)


async def test_a_policy_that_verifies_but_does_not_validate_falls_back_without_a_hold(
        tmp_path, nursery):
    hub = await start_hub(tmp_path, nursery)
    daemon, _ = await start_agent(hub, nursery, "desk", "127.0.0.2")
    set_policy(hub.hub_dir, "lab", write(tmp_path / "pause.toml", "paused = true\n"))
    await daemon.cycle()
    bad = write(tmp_path / "bad.toml", "paused = 7\n")
    HubRepository(HubDir(hub.hub_dir.root)).add_release_targets(
        [ReleaseTargetEntry("policies/lab.toml", bad, serve_via_tuf=True)])
    await daemon.cycle()
    assert daemon.gate.hold is None and daemon.gate.policy.paused  # the last good one
    assert "REFUSED newer policy" in daemon.journal.status()["policy"][0]
    nursery.cancel_scope.cancel()
    await trio.sleep(0)


async def test_a_deployment_waiting_for_its_window_does_not_install_while_held(
        tmp_path, autojump_clock):
    """The gate alone on MockClock: downloaded and waiting for tonight's window, then a
    hold begins; the window opens and passes without an install until the hold ends."""
    nights = '[[windows]]\nname = "night"\nwhen = "Daily 03:00-04:00"\n'
    clock = TrioWallClock(datetime(2024, 6, 5, 2, tzinfo=UTC))
    device = new_gate(tmp_path, "desk", clock, nights)
    release, info = release_info(published=clock.now())
    with pytest.raises(NotEligibleYet):
        await device.gate.wait_for_install(release, info)
    hold = PolicyHold("policies/office.toml", "the hub answered HTTP 404", "2024-06-05T02:00")
    device.gate.apply(replace(update(nights), digest="hold:x", hold=hold))
    await sleep_until(clock, datetime(2024, 6, 5, 3, 30, tzinfo=UTC))  # window open
    with pytest.raises(NotEligibleYet) as held:
        await device.gate.wait_for_install(release, info)
    assert held.value.text == (
        "held: policies/office.toml cannot be used (the hub answered HTTP 404)")
    assert not device.gate.admit(release, info)
    device.gate.apply(update(nights))  # the file verifies again
    await device.gate.wait_for_install(release, info)  # inside the window: go
