"""A rogue certified site peer against a real agent process while a release that needed
a reboot is in its checks after the "reboot" (issue 12, attack 3). Each hostile frame
(100,000 brackets, a 5,000-digit integer) used to end the agent; the service manager
started it again, the boot counter counted every start, and after `max_boots` starts the
healthy release was reverted and reported as a failure. Now the agent answers each frame
by closing that one conversation, and the release commits.

Real processes: the agent is `meisitong-agent run` (restart-agent reboot adapter, the
harness restarting it as systemd would), the hub is real, the rogue is an enrolled
device of the same hub with its hub-issued certificate, speaking real mutual TLS.
"""

from __future__ import annotations

import pytest
import trio

from agent.reboot import RESTART_EXIT_CODE
from hub.rollouts.changes import start_rollout
from tests.e2e._crash_harness import (
    Agent,
    command_check,
    publish,
    start_hub_published,
    supervise,
    write_tar,
)
from tests.fleet import free_port, start_agent

pytestmark = pytest.mark.slow

MANIFEST = 'reboot = true\n[install]\ntype = "file-tree"\nroot = "/opt/app"\n'
FRAMES = [b"[" * 100_000 + b"]" * 100_000,
          b'{"type": "digest", "digest": {"dev-00000000000000000000": ' + b"7" * 5000 + b"}}"]


async def send_frame(rogue, address: str, frame: bytes) -> bool:
    """True if the frame went out whole; the agent then closes the conversation (and,
    the rogue being penalised, its next connections right after the handshake)."""
    sent = False
    try:
        async with rogue.gossip.node._dial(address) as (framed, _peer):
            await framed.send_frame(frame)
            sent = True
            with trio.move_on_after(5):
                await framed.receive_frame()
    except Exception:  # noqa: BLE001, S110 - a closed conversation is the expected answer
        pass
    return sent


async def test_hostile_frames_during_the_checks_after_a_reboot_neither_end_the_agent_nor_revert(
    tmp_path, nursery
):
    marker = tmp_path / "healthy"

    def prepare(hub):
        payload = write_tar(tmp_path / "app.tar", {"VERSION": (b"2.0.0", 0o644)})
        # Healthy once the test says so: the checks run while the rogue sends its frames.
        wait = f"for i in $(seq 300); do test -e {marker} && exit 0; sleep 0.2; done; exit 1"
        target = publish(hub, "app", "2.0.0", payload,
                         MANIFEST + command_check(["sh", "-c", wait], timeout=90))
        start_rollout(hub.hub_dir, target, "reboot-ok", new_group=True)

    hub, _ = await start_hub_published(tmp_path, nursery, prepare)
    agent = Agent(hub, "victim", "reboot-ok", tmp_path / "victim")
    gossip = f"{agent.address}:{free_port(agent.address)}"
    agent.lifecycle = f'reboot = "restart-agent"\nmax_boots = 2\n[gossip]\nlisten = "{gossip}"\n'
    (agent.prefix / "opt/app").mkdir(parents=True)
    (agent.prefix / "opt/app/VERSION").write_bytes(b"1.0.0")
    await agent.enroll()
    rogue, _ = await start_agent(hub, nursery, "rogue", "127.0.0.252")

    codes: list[int | None] = []

    async def service_manager():
        codes.extend(await supervise(agent, [], timeout=150))

    async with trio.open_nursery() as inner:
        inner.start_soon(service_manager)
        with trio.fail_after(90):
            while "checking" not in [to for _f, to, _w in agent.transitions()]:
                await trio.sleep(0.2)
        delivered = 0
        for _round in range(3):  # more than max_boots: each used to cost a start
            for frame in FRAMES:
                delivered += await send_frame(rogue, gossip, frame)
                await trio.sleep(0.3)
        marker.touch()
    assert delivered >= 1, "no hostile frame reached the agent"
    log = (agent.home / "agent.log").read_text()
    assert f"closed connection of penalised {rogue.identity.device_id}" in log
    assert codes == [RESTART_EXIT_CODE, None], codes
    [result] = agent.hub_results()
    assert result["outcome"] == "installed", result
    states = [to for _from, to, _why in agent.transitions()]
    assert "reverting" not in states and states[-1] == "committed"
    assert (agent.prefix / "opt/app/VERSION").read_bytes() == b"2.0.0"
