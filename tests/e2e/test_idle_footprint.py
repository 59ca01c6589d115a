"""An idle `meisitong-agent run` process holds no libtorrent, and a rollout brings it
a session only for as long as there is a swarm to be in (agent/on_demand_peers.py).

Real processes: an in-process hub (HTTP, tracker, seeder) and the agent daemon as its
own process, looked at from outside through /proc, its journal's status and its
listening port, as an operator would.
"""

from __future__ import annotations

import signal
import socket
from pathlib import Path

import pytest
import trio

from agent.config import AgentConfig
from tests.e2e._crash_harness import Agent, file_hash_check, publish, start_hub_published, write_tar
from tests.fleet import ServedHub
from tests.proc_stats import maps_file

pytestmark = pytest.mark.slow

PAYLOAD = b"idle footprint " * 4000


def _status(agent: Agent) -> dict[str, str]:
    return dict(agent.journal_rows("SELECT key, value FROM agent_status"))


def _port_is_free(listen: str) -> bool:
    """Whether nothing listens on the agent's P2P address (we can bind it ourselves)."""
    host, _, port = listen.rpartition(":")
    with socket.socket() as probe:
        try:
            probe.bind((host, int(port)))
        except OSError:
            return False
    return True


async def _wait(what: str, condition, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    with trio.move_on_after(timeout):
        while not await trio.to_thread.run_sync(condition):
            await trio.sleep(0.2)
        return
    raise AssertionError(f"timed out waiting for {what}")


async def test_idle_daemon_has_no_libtorrent_until_a_rollout_and_drops_its_session_after(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    payload = write_tar(tmp_path / "app.tar", {"v.txt": (PAYLOAD, 0o644)})

    def prepare(hub: ServedHub) -> str:
        return publish(hub, "app", "1.0", payload,
                       '[install]\ntype = "file-tree"\nroot = "/opt/app"\n'
                       + file_hash_check("/opt/app/v.txt", PAYLOAD))

    hub, release = await start_hub_published(tmp_path, nursery, prepare)
    agent = Agent(hub, "idle", "lab", tmp_path / "idle")
    await agent.enroll()
    listen = AgentConfig.load(agent.config_file).p2p.listen
    process = await agent.start()
    try:
        # Idle: several polls (0.3 s apart) with nothing to do; the later ones find the
        # timestamp unchanged and skip the TUF chain.
        await _wait("an idle poll that skipped the chain",
                    lambda: _status(agent).get("metadata", "").startswith("unchanged"))
        assert process.poll() is None
        assert not maps_file(process.pid, "libtorrent"), "an idle agent has libtorrent loaded"
        assert _status(agent)["p2p"].startswith("no libtorrent session")
        assert _port_is_free(listen), "an idle agent listens on its P2P port"

        hub.rollout(release)
        await _wait("the install, delivered to the hub", agent.done)
        await _wait("the session dropped after seeding (seed_time 0)",
                    lambda: _status(agent)["p2p"].startswith("no libtorrent session"))
        log = (agent.home / "agent.log").read_text()
        assert log.count("libtorrent session started") == 1
        assert "nothing to download or seed: libtorrent session closed" in log
        assert _port_is_free(listen), "the dropped session still listens"
        # The extension module stays loaded (CPython cannot unload one); seeing it now
        # also shows the check above looks at the right thing.
        assert maps_file(process.pid, "libtorrent")
        assert process.poll() is None, "the daemon keeps running"
        assert (agent.prefix / "opt/app/v.txt").read_bytes() == PAYLOAD
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            with trio.move_on_after(10):
                await process.wait()
        if process.poll() is None:
            process.kill()
            await process.wait()
