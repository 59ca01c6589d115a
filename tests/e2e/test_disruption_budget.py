"""The disruption budget with real agents: a hub and four agents of one group as
separate processes on 127.0.0.1-5 (real TUF, libtorrent, HTTP, SQLite). The group's
signed policy allows one device at a time: no two installs overlap. Then the device
holding the lease is killed with SIGKILL mid-install; the others wait until its lease
expires, the hub reclaims it, and they go on — still one at a time."""

from __future__ import annotations

import io
import json
import signal
import sqlite3
import tarfile
import time
from datetime import datetime
from pathlib import Path

import pytest

from agent.deployment_detail import DeploymentDetail
from agent.lifecycle import State
from tests.processes import BIN_AGENT, BIN_HUB, Fleet, free_port, wait_for

pytestmark = pytest.mark.slow

HUB = "127.0.0.1"
AGENTS = ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"]
LEASE_SECONDS = 6
POLICY = f"[disruption]\nmax_concurrent = 1\nlease_minutes = {LEASE_SECONDS / 60}\n"
CHECK = "#!/bin/sh\nsleep {seconds}\n"
RELEASE = """name = "app"
version = "{version}"
severity = "important"
category = "application"
[install]
type = "file-tree"
root = "/opt/app"
[[health]]
type = "command"
argv = ["{{root}}/opt/app/bin/check"]
timeout = 20
retries = 0
"""


def payload(directory: Path, version: str, check_seconds: float) -> tuple[Path, Path]:
    tar = directory / f"app-{version}.tar"
    with tarfile.open(tar, "w") as archive:
        for name, data, mode in [("VERSION", version.encode(), 0o644),
                                 ("bin/check", CHECK.format(seconds=check_seconds).encode(),
                                  0o755)]:
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            archive.addfile(info, io.BytesIO(data))
    release = directory / f"app-{version}.toml"
    release.write_text(RELEASE.format(version=version))
    return release, tar


def deployment(agent_home: Path, version: str) -> dict | None:
    """The deployment's state and, per state, when it was entered (read through the
    journal's own record, so a change of its JSON layout cannot break this test)."""
    db = sqlite3.connect(agent_home / "state/journal.db", timeout=10)
    try:
        row = db.execute("SELECT state, detail FROM deployments WHERE version = ?",
                         (version,)).fetchone()
    finally:
        db.close()
    if row is None:
        return None
    detail = DeploymentDetail.parse(json.loads(row[1]), f"{agent_home.name} {version}")
    return {"state": row[0], "at": detail.at}


def held_lease_expiry(agent_home: Path, version: str) -> float:
    """When the lease the agent journaled for the release's install expires (Unix time)."""
    db = sqlite3.connect(agent_home / "state/journal.db", timeout=10)
    try:
        [value] = db.execute("SELECT value FROM agent_status WHERE key = 'leases'").fetchone()
    finally:
        db.close()
    [held] = [lease for release, lease in json.loads(value).items() if version in release]
    return datetime.fromisoformat(held["expires_at"]).timestamp()


def install_spans(homes: list[Path], version: str) -> list[tuple[float, float]]:
    spans = []
    for home in homes:
        done = deployment(home, version)
        assert done is not None and done["state"] == "committed", (home.name, done)
        spans.append((done["at"][State.SNAPSHOTTING], done["at"][State.COMMITTED]))
    return sorted(spans)


def assert_one_at_a_time(spans: list[tuple[float, float]]) -> None:
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
        assert start >= end, f"two installs overlapped: {spans}"


def test_one_device_at_a_time_and_a_dead_holders_lease_is_reclaimed(tmp_path):
    port = free_port(HUB)
    fleet = Fleet(tmp_path, tmp_path / "hub", f"http://{HUB}:{port}")
    try:
        token = fleet.serve_new_hub()
        homes = []
        for number, address in enumerate(AGENTS, start=1):
            home = tmp_path / f"node-{number}"
            (home / "root").mkdir(parents=True)
            config = home / "agent.toml"
            config.write_text(
                f'[agent]\nstate_dir = "{home / "state"}"\nname = "node-{number}"\n'
                f'group = "cluster"\ninstall_prefix = "{home / "root"}"\npoll_interval = 1\n'
                f'[p2p]\nlisten = "{address}:{free_port(address)}"\nlocal_discovery = false\n'
                "web_seed_after = 2\ndownload_timeout = 60\n")
            fleet.command(BIN_AGENT, "enroll", "--config", str(config), "--hub", fleet.hub_url,
                          "--token", token)
            fleet.start(home.name, BIN_AGENT, "run", "--config", str(config))
            homes.append(home)
        (tmp_path / "cluster.toml").write_text(POLICY)
        fleet.command(BIN_HUB, "policy", "set", "cluster", str(tmp_path / "cluster.toml"))

        # 1. Four devices, a budget of one: installs happen strictly one after another.
        fleet.command(BIN_HUB, "publish", *map(str, payload(tmp_path, "1.0.0", 1.5)))
        fleet.command(BIN_HUB, "rollout", "start", "app@1.0.0", "--group", "cluster",
                      "--stages", "100")
        wait_for(lambda: all((d := deployment(h, "1.0.0")) and d["state"] == "committed"
                             for h in homes), 120, "every node to install 1.0.0")
        assert_one_at_a_time(install_spans(homes, "1.0.0"))

        # 2. The holder dies mid-install: nobody else starts until its lease expires.
        fleet.command(BIN_HUB, "publish", *map(str, payload(tmp_path, "2.0.0", 3)))
        fleet.command(BIN_HUB, "rollout", "start", "app@2.0.0", "--group", "cluster",
                      "--stages", "100")
        holder = wait_for(lambda: next((h for h in homes if (d := deployment(h, "2.0.0"))
                                        and d["state"] == "checking"), None),
                          120, "a node to hold the lease and install 2.0.0")
        fleet.processes[holder.name].send_signal(signal.SIGKILL)
        killed_at = time.time()
        others = [h for h in homes if h is not holder]
        wait_for(lambda: all((d := deployment(h, "2.0.0")) and d["state"] == "committed"
                             for h in others), 120, "the other nodes to install 2.0.0")
        spans = install_spans(others, "2.0.0")
        assert_one_at_a_time(spans)
        # Its lease was live when it died, and nobody started before it ran out: the
        # expiry the hub last granted it, as it journaled it (the hub may have granted a
        # later one it had no time to journal). Not a bound from the kill time: how long
        # before the kill its last renewal came depends on how busy the machine was, and
        # the hub grants expiries to the second.
        expiry = held_lease_expiry(holder, "2.0.0")
        assert expiry > killed_at, (expiry, killed_at)
        assert spans[0][0] >= expiry, (expiry, spans)
        audit = json.loads(fleet.command(BIN_HUB, "audit", "--json", "--limit", "500").stdout)
        reclaimed = [row for row in audit if row["action"] == "lease.reclaim"]
        device_homes = {json.loads((h / "state/enrollment.json").read_text())["device_id"]: h
                        for h in homes}
        holder_id = next(d for d, h in device_homes.items() if h is holder)
        assert holder_id in [row["subject"] for row in reclaimed]
        # Any other lease reclaimed is one whose device had finished installing and was
        # late to hand it back (a busy machine); never one taken from an install running.
        for row in reclaimed:
            if row["subject"] == holder_id:
                continue
            detail = row["detail"] if isinstance(row["detail"], dict) else json.loads(
                row["detail"])
            version = "2.0.0" if "2.0.0" in detail["release"] else "1.0.0"
            home = device_homes[row["subject"]]
            done = deployment(home, version)
            assert done is not None and done["state"] == "committed", (row, done)
            reclaimed_at = datetime.fromisoformat(row["at"]).timestamp()
            assert reclaimed_at + 1 >= done["at"][State.COMMITTED], (row, done)
    except BaseException:
        for log in sorted(tmp_path.glob("*.log")):
            print(f"--- {log.name}\n" + "\n".join(
                log.read_text(errors="replace").splitlines()[-20:]))
        raise
    finally:
        fleet.stop_all()

