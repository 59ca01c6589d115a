"""A real `meisitong-agent run` process with `[metrics]` on, against a real hub process:
its loopback listener and its node-exporter textfile both read with prometheus_client's
parser before and after a rollout it installs (state, refresh time, bytes by channel,
outbox depth), the textfile 0644 and never torn, its JSON log lines parsed."""

from __future__ import annotations

import hashlib
import json
import socket
import stat
import time
from pathlib import Path

import httpx
import pytest

from agent.wire.enrollment import EnrollmentToken
from tests.e2e._metrics import parse, scrape, value
from tests.fleet import tar_bytes
from tests.processes import BIN_AGENT, BIN_HUB, Fleet, free_port, wait_for

pytestmark = pytest.mark.slow

HUB_ADDRESS, AGENT_ADDRESS = "127.0.0.1", "127.0.0.2"
CONTENT = b"metrics " * 20000
RELEASE = f"""name = "app"
version = "1.0.0"
severity = "important"
category = "application"

[install]
type = "file-tree"
root = "/opt/app"

[[health]]
type = "file-hash"
path = "/opt/app/v.txt"
sha256 = "{hashlib.sha256(CONTENT).hexdigest()}"
"""


def raw_request(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def test_agent_metrics_listener_and_textfile_follow_a_real_rollout(tmp_path: Path) -> None:
    fleet = Fleet(tmp_path, tmp_path / "hub", f"http://{HUB_ADDRESS}:{free_port(HUB_ADDRESS)}")
    token = fleet.serve_new_hub()
    home = tmp_path / "agent"
    prefix = home / "root"
    prefix.mkdir(parents=True)
    textfile = tmp_path / "textfile" / "meisitong.prom"
    metrics_port = free_port("127.0.0.1")
    config = home / "agent.toml"
    config.write_text(
        f'[agent]\nstate_dir = "{home / "state"}"\nname = "box-1"\ngroup = "lab"\n'
        f'install_prefix = "{prefix}"\npoll_interval = 0.5\n'
        f'[p2p]\nlisten = "{AGENT_ADDRESS}:{free_port(AGENT_ADDRESS)}"\n'
        "local_discovery = false\nweb_seed_after = 1\nseed_time = 0\ndownload_timeout = 60\n"
        '[lifecycle]\nreboot = "restart-agent"\n'
        f'[metrics]\nlisten = "127.0.0.1:{metrics_port}"\ntextfile = "{textfile}"\n'
        'interval = 1\n[logging]\nformat = "json"\n')
    enrolled = fleet.command(BIN_AGENT, "-vv", "enroll", "--config", str(config),
                             "--hub", fleet.hub_url, "--token", token)
    fleet.start("agent", BIN_AGENT, "-vv", "run", "--config", str(config))
    agent_url = f"http://127.0.0.1:{metrics_port}"
    try:
        idle = wait_for(lambda: textfile.exists() and parse(textfile.read_text()), 30,
                        "the first textfile")
        assert stat.S_IMODE(textfile.stat().st_mode) == 0o644
        assert value(idle, "meisitong_agent_build_info") == 1
        assert value(idle, "meisitong_agent_libtorrent_session") == 0
        assert value(idle, "meisitong_agent_deployments", state="committed") == 0
        refreshed = wait_for(lambda: value(scrape(agent_url),
                                           "meisitong_agent_metadata_last_refresh_timestamp_"
                                           "seconds"), 30, "a metadata refresh")
        assert abs(refreshed - time.time()) < 60

        payload = tmp_path / "app.tar"
        payload.write_bytes(tar_bytes({"v.txt": CONTENT}))
        (tmp_path / "RELEASE.toml").write_text(RELEASE)
        published = json.loads(fleet.command(
            BIN_HUB, "publish", str(tmp_path / "RELEASE.toml"), str(payload), "--json").stdout)
        fleet.command(BIN_HUB, "rollout", "start", "app", "--group", "lab", "--stages", "100")

        def installed_and_delivered() -> dict[str, list] | None:
            families = scrape(agent_url)
            done = (value(families, "meisitong_agent_deployments", state="committed") == 1
                    and value(families, "meisitong_agent_outbox_pending_records") == 0)
            return families if done else None

        after = wait_for(installed_and_delivered, 90, "the install, delivered")
        downloaded = sum(value(after, "meisitong_agent_payload_bytes_downloaded_total",
                               channel=channel)
                         for channel in ("peers", "hub-seeder", "web-seed"))
        assert downloaded >= published["length"]
        assert value(after, "meisitong_agent_payload_bytes_downloaded_total",
                     channel="peers") + value(after, "meisitong_agent_payload_bytes_"
                                                     "downloaded_total", channel="hub-seeder") \
            + value(after, "meisitong_agent_payload_bytes_downloaded_total",
                    channel="web-seed") == downloaded
        assert value(after, "meisitong_agent_installs_blocked") == 0
        assert (prefix / "opt/app/v.txt").read_bytes() == CONTENT
        # The textfile catches up within its interval.
        wait_for(lambda: value(parse(textfile.read_text()), "meisitong_agent_deployments",
                               state="committed") == 1, 10, "the textfile to show the install")
        assert stat.S_IMODE(textfile.stat().st_mode) == 0o644
        assert [p.name for p in textfile.parent.iterdir()] == ["meisitong.prom"]

        # The listener answers /metrics only, and shrugs off what is not HTTP.
        assert httpx.get(f"{agent_url}/other", timeout=10).status_code == 404
        assert httpx.post(f"{agent_url}/metrics", timeout=10).status_code == 405
        assert raw_request(metrics_port, b"garbage\r\n\r\n").startswith(b"HTTP/1.0 400")
        assert httpx.get(f"{agent_url}/metrics", timeout=10).status_code == 200
    finally:
        fleet.stop_all()

    log = (tmp_path / "agent.log").read_text().splitlines()
    entries = [json.loads(line) for line in log if line.strip()]
    assert any(entry["level"] == "DEBUG" for entry in entries)
    assert any("metrics on http://127.0.0.1" in entry["message"] for entry in entries)
    secret = EnrollmentToken.parse(token).secret
    assert secret not in "\n".join(log) + enrolled.stdout + enrolled.stderr
