"""Releases that need a reboot, with real agent processes: the agent "reboots" through
the restart-agent adapter (it exits with code 75 and the harness, as systemd would,
starts it again), runs the checks after the restart, and a release that keeps the agent
from getting through its checks is reverted by the boot counter.
"""

from __future__ import annotations

import signal

import pytest

from agent.reboot import RESTART_EXIT_CODE
from hub.rollouts.changes import start_rollout
from tests.agent._tree_state import tree_state
from tests.e2e._crash_harness import (
    Agent,
    command_check,
    file_hash_check,
    publish,
    start_hub_published,
    supervise,
    write_tar,
)

pytestmark = pytest.mark.slow

MANIFEST = 'reboot = true\n[install]\ntype = "file-tree"\nroot = "/opt/app"\n'


async def endpoint(hub, tmp_path, name, group, lifecycle):
    agent = Agent(hub, name, group, tmp_path / name, lifecycle=lifecycle)
    (agent.prefix / "opt/app").mkdir(parents=True)
    (agent.prefix / "opt/app/VERSION").write_bytes(b"1.0.0")
    await agent.enroll()
    return agent


async def test_release_needing_a_reboot_restarts_the_agent_then_checks_and_commits(
    tmp_path, nursery
):
    def prepare(hub):
        payload = write_tar(tmp_path / "app.tar", {"VERSION": (b"2.0.0", 0o644)})
        target = publish(hub, "app", "2.0.0", payload,
                         MANIFEST + file_hash_check("/opt/app/VERSION", b"2.0.0"))
        start_rollout(hub.hub_dir, target, "reboot-ok", new_group=True)

    hub, _ = await start_hub_published(tmp_path, nursery, prepare)
    agent = await endpoint(hub, tmp_path, "r1", "reboot-ok", 'reboot = "restart-agent"\n')
    codes = await supervise(agent, [], timeout=90)
    assert codes == [RESTART_EXIT_CODE, None]
    [result] = agent.hub_results()
    assert result["outcome"] == "installed"
    states = [to for _from, to, _why in agent.transitions()]
    assert states[-4:] == ["installing", "rebooting", "checking", "committed"]
    assert (agent.prefix / "opt/app/VERSION").read_bytes() == b"2.0.0"
    assert agent.leftovers() == []


async def test_release_that_keeps_killing_the_agent_in_its_checks_is_reverted_by_the_boot_counter(
    tmp_path, nursery
):
    def prepare(hub):
        payload = write_tar(tmp_path / "app.tar", {"VERSION": (b"2.0.0", 0o644)})
        # Stands in for a new version that takes the machine down whenever it starts: the
        # check kills the agent that runs it (its parent process).
        target = publish(hub, "app", "2.0.0", payload,
                         MANIFEST + command_check(["sh", "-c", "kill -KILL $PPID; sleep 5"]))
        start_rollout(hub.hub_dir, target, "reboot-loop", new_group=True)

    hub, _ = await start_hub_published(tmp_path, nursery, prepare)
    agent = await endpoint(hub, tmp_path, "r2", "reboot-loop",
                           'reboot = "restart-agent"\nmax_boots = 2\n')
    before = tree_state(agent.prefix)
    codes = await supervise(agent, [], timeout=120)
    assert codes == [RESTART_EXIT_CODE, -signal.SIGKILL, -signal.SIGKILL, None]
    [result] = agent.hub_results()
    assert result["outcome"] == "reverted"
    assert "boot counter: 3 starts" in result["reason"]
    assert tree_state(agent.prefix) == before
    assert agent.leftovers() == []


async def test_a_snapshot_that_kills_the_agent_every_time_ends_in_failed_by_the_loop_counter(
    tmp_path, nursery
):
    """Each start dies right after journaling snapshotting (the crash hook stands in for a
    tree whose snapshot crashes the agent): the start counter of that state, like
    Mender's state-loop detection, ends the deployment in failed with nothing changed
    instead of restarting forever."""
    def prepare(hub):
        payload = write_tar(tmp_path / "app.tar", {"VERSION": (b"2.0.0", 0o644)})
        target = publish(hub, "app", "2.0.0", payload,
                         '[install]\ntype = "file-tree"\nroot = "/opt/app"\n')
        start_rollout(hub.hub_dir, target, "snapshot-loop", new_group=True)

    hub, _ = await start_hub_published(tmp_path, nursery, prepare)
    agent = await endpoint(hub, tmp_path, "r3", "snapshot-loop",
                           'reboot = "restart-agent"\nmax_boots = 2\n')
    before = tree_state(agent.prefix)
    codes = await supervise(agent, ["snapshotting"] * 10, timeout=120)
    # Killed at the first start and at three resumes; the fourth resume finds it there a
    # third time (more than max_boots) and fails it.
    assert codes == [-signal.SIGKILL] * 3 + [None]
    [result] = agent.hub_results()
    assert result["outcome"] == "failed"
    assert "state loop: 3 agent starts found it in snapshotting" in result["reason"]
    assert tree_state(agent.prefix) == before
    assert agent.leftovers() == []
