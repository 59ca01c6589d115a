"""One daemon per directory, and a taken port named, through the real commands.

A second `meisitong-agent run` on a state directory used to start beside the first:
it counted a boot the first had not made and deleted the payload the first was seeding.
A second `meisitong-hub serve` would re-sign the timestamp and run rollouts twice. Both
are refused at once naming the running PID; the lock dies with its holder (kill -9), so
the next start needs nothing cleared by hand.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from tests.fleet import sha256, tar_bytes
from tests.processes import BIN_AGENT, BIN_HUB, Fleet, free_port, reachable, wait_for

pytestmark = pytest.mark.slow

HUB = "127.0.0.21"
AGENT = "127.0.0.22"
RELEASE = f"""name = "app"
version = "1.0.0"
severity = "important"
category = "application"
[install]
type = "file-tree"
root = "/opt/app"
[[health]]
type = "file-hash"
path = "/opt/app/VERSION"
sha256 = "{sha256(b"1.0.0")}"
"""


def run_briefly(*argv: str) -> subprocess.CompletedProcess[str]:
    """A command that must give up at once; 20 s is far more than a refusal takes."""
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=20)


def kill_hard(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)


def started_hub(tmp_path: Path) -> tuple[Fleet, int]:
    hub_port = free_port(HUB)
    fleet = Fleet(tmp_path, tmp_path / "hub", f"http://{HUB}:{hub_port}")
    fleet.command(BIN_HUB, "init", "--listen", f"{HUB}:{hub_port}",
                  "--seed-listen", f"{HUB}:{free_port(HUB)}")
    fleet.start("hub", BIN_HUB, "serve", "--dir", str(fleet.hub_dir))
    wait_for(lambda: reachable(HUB, hub_port), 30, "the hub to listen")
    return fleet, hub_port


def test_second_hub_serve_on_one_directory_is_refused_naming_the_running_pid(tmp_path):
    fleet, hub_port = started_hub(tmp_path)
    try:
        first = fleet.processes["hub"]
        second = run_briefly(BIN_HUB, "serve", "--dir", str(fleet.hub_dir))
        assert second.returncode == 1
        assert f"already running here (PID {first.pid})" in second.stderr
        assert "Traceback" not in second.stderr
        assert first.poll() is None and reachable(HUB, hub_port)

        # The lock dies with its holder: after kill -9 the next serve starts.
        kill_hard(first)
        fleet.start("hub", BIN_HUB, "serve", "--dir", str(fleet.hub_dir))
        wait_for(lambda: reachable(HUB, hub_port), 30, "a new hub after kill -9")
    finally:
        fleet.stop_all()


def test_hub_serve_on_a_taken_port_names_the_address_and_setting(tmp_path):
    port = free_port(HUB)
    fleet = Fleet(tmp_path, tmp_path / "hub", f"http://{HUB}:{port}")
    fleet.command(BIN_HUB, "init", "--listen", f"{HUB}:{port}",
                  "--seed-listen", f"{HUB}:{free_port(HUB)}")
    with socket.socket() as squatter:
        squatter.bind((HUB, port))
        squatter.listen()
        refused = run_briefly(BIN_HUB, "serve", "--dir", str(fleet.hub_dir))
    assert refused.returncode == 1
    assert f"cannot listen on {HUB}:{port} ([server] listen in hub.toml): already in use" in (
        refused.stderr
    )
    assert "Traceback" not in refused.stderr


def test_second_agent_run_is_refused_and_leaves_the_first_ones_seeded_payload_and_boots(
    tmp_path,
):
    fleet, _ = started_hub(tmp_path)
    home = tmp_path / "agent"
    (home / "root").mkdir(parents=True)
    config = home / "agent.toml"
    gossip_port = free_port(AGENT)
    config.write_text(
        f'[agent]\nstate_dir = "{home / "state"}"\nname = "a"\ngroup = "lab"\n'
        f'install_prefix = "{home / "root"}"\npoll_interval = 1\n'
        f'[p2p]\nlisten = "{AGENT}:{free_port(AGENT)}"\nlocal_discovery = false\n'
        "web_seed_after = 2\nseed_time = 600\ndownload_timeout = 120\n"
        f'[gossip]\nlisten = "{AGENT}:{gossip_port}"\n'
    )
    # Its gossip port is taken all along: that costs gossip (it only dials out), never
    # the daemon, and the log names the address and setting.
    squatter = socket.socket()
    squatter.bind((AGENT, gossip_port))
    squatter.listen()
    try:
        token = (fleet.hub_dir / "enrollment-token").read_text().strip()
        fleet.command(BIN_AGENT, "enroll", "--config", str(config), "--hub", fleet.hub_url,
                      "--token", token)
        fleet.start("agent", BIN_AGENT, "run", "--config", str(config))
        payload = tmp_path / "app.tar"
        payload.write_bytes(tar_bytes({"VERSION": b"1.0.0"}))
        (tmp_path / "RELEASE.toml").write_text(RELEASE)
        fleet.command(BIN_HUB, "publish", str(tmp_path / "RELEASE.toml"), str(payload))
        fleet.command(BIN_HUB, "rollout", "start", "app", "--group", "lab", "--stages", "100")

        def status() -> dict:
            return json.loads(fleet.command(BIN_AGENT, "status", "--config", str(config),
                                            "--json").stdout)

        wait_for(lambda: [d["state"] for d in status()["deployments"]] == ["committed"], 120,
                 "the agent to install")
        downloads = home / "state" / "downloads"
        seeded = sorted(p for p in downloads.rglob("*") if p.is_file())
        assert seeded, "the committed release's payload is kept for seeding"
        before = status()

        first = fleet.processes["agent"]
        second = run_briefly(BIN_AGENT, "run", "--config", str(config))
        assert second.returncode == 1
        assert f"already running here (PID {first.pid})" in second.stderr
        assert "Traceback" not in second.stderr

        assert first.poll() is None
        assert sorted(p for p in downloads.rglob("*") if p.is_file()) == seeded
        after = status()
        assert after["deployments"] == before["deployments"]
        assert after["status"]["daemon"] == before["status"]["daemon"]

        kill_hard(first)
        fleet.start("agent", BIN_AGENT, "run", "--config", str(config))
        wait_for(lambda: f"pid {fleet.processes['agent'].pid}" in status()["status"]["daemon"],
                 30, "a new agent after kill -9")
        log = (tmp_path / "agent.log").read_text()
        assert f"cannot listen on {AGENT}:{gossip_port} ([gossip] listen in agent.toml)" in log
    finally:
        squatter.close()
        fleet.stop_all()


def test_lock_file_names_its_holder_and_is_private(tmp_path):
    from agent.errors import AlreadyRunningError
    from agent.instance_lock import hold_directory

    with hold_directory(tmp_path, "meisitong-agent run"):
        lock = tmp_path / "daemon.lock"
        assert lock.read_text().strip() == str(os.getpid())
        assert lock.stat().st_mode & 0o777 == 0o600
        # Another open file description in this very process is refused too.
        with (pytest.raises(AlreadyRunningError, match=f"PID {os.getpid()}"),
              hold_directory(tmp_path, "meisitong-agent run")):
            pass
    # Released at the end of the block.
    with hold_directory(tmp_path, "meisitong-agent run"):
        pass
