"""The hub goes down mid-rollout; the branch office carries on; nothing is lost.

Real processes through the real commands (`meisitong-hub init/publish/rollout/serve`,
`meisitong-agent enroll/run`): a hub on 127.0.0.1 and four agents of one site on
127.0.0.2-5, gossiping over mutual TLS with their hub-issued certificates (each knows
only the first agent as a seed).

1. Hub up: agents A and B install the release and report.
2. Hub stopped. Agents C and D start for the first time: they get the TUF metadata and
   the torrent from peers (verified by TUF), the payload from A and B (who keep seeding;
   the tracker and the web seed are gone), install, and their results queue.
3. C is stopped too: its result now exists only in its outbox and, by gossip, at its
   peers.
4. Hub back: every result arrives — C's through a relay — exactly once (one row per
   device and release in the hub's database); C comes back and every outbox is empty.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.fleet import sha256, tar_bytes
from tests.processes import BIN_AGENT, BIN_HUB, Fleet, free_port, reachable, wait_for

pytestmark = pytest.mark.slow

HUB = "127.0.0.1"
AGENTS = {"a": "127.0.0.2", "b": "127.0.0.3", "c": "127.0.0.4", "d": "127.0.0.5"}
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


def agent_status(fleet: Fleet, config: Path) -> dict:
    return json.loads(fleet.command(BIN_AGENT, "status", "--config", str(config), "--json").stdout)


def committed(fleet: Fleet, config: Path) -> bool:
    deployments = agent_status(fleet, config)["deployments"]
    return bool(deployments) and deployments[0]["state"] == "committed"


def hub_rows(fleet: Fleet) -> list[tuple[str, str, int]]:
    with sqlite3.connect(fleet.hub_dir / "hub.db") as db:
        return db.execute(
            "SELECT device_id, release, COUNT(*) FROM results GROUP BY device_id, release"
        ).fetchall()


def gossiped_results(home: Path) -> set[str]:
    with sqlite3.connect(home / "state" / "gossip.db") as db:
        return {key for (key,) in db.execute("SELECT key FROM entries WHERE kind = 'result'")}


def test_hub_down_mid_rollout_site_carries_on_and_every_result_arrives_exactly_once(tmp_path):
    hub_port = free_port(HUB)
    fleet = Fleet(tmp_path, tmp_path / "hub", f"http://{HUB}:{hub_port}")
    gossip_ports = {name: free_port(address) for name, address in AGENTS.items()}
    seed = f"{AGENTS['a']}:{gossip_ports['a']}"
    homes, configs, devices = {}, {}, {}
    try:
        token = fleet.serve_new_hub()
        for name, address in AGENTS.items():
            home = homes[name] = tmp_path / name
            (home / "root").mkdir(parents=True)
            configs[name] = home / "agent.toml"
            configs[name].write_text(
                f'[agent]\nstate_dir = "{home / "state"}"\nname = "{name}"\ngroup = "lab"\n'
                f'site = "branch"\ninstall_prefix = "{home / "root"}"\npoll_interval = 1\n'
                f'[p2p]\nlisten = "{address}:{free_port(address)}"\nlocal_discovery = false\n'
                "web_seed_after = 30\nseed_time = 600\ndownload_timeout = 120\n"
                f'[gossip]\nlisten = "{address}:{gossip_ports[name]}"\nseeds = ["{seed}"]\n'
                "interval = 0.5\nhub_sync_interval = 1\nretry_hub_after = 5\n"
            )
            enrolled = fleet.command(BIN_AGENT, "enroll", "--config", str(configs[name]),
                                     "--hub", fleet.hub_url, "--token", token).stdout
            devices[name] = enrolled.split()[2]
            assert (home / "state" / "device.crt").exists()  # issued by the hub's CA

        # 1. Hub up: A and B install and report.
        for name in ("a", "b"):
            fleet.start(name, BIN_AGENT, "run", "--config", str(configs[name]))
        payload = tmp_path / "app.tar"
        payload.write_bytes(tar_bytes({"VERSION": b"1.0.0", "data.bin": bytes(range(256)) * 8192}))
        (tmp_path / "RELEASE.toml").write_text(RELEASE)
        fleet.command(BIN_HUB, "publish", str(tmp_path / "RELEASE.toml"), str(payload))
        fleet.command(BIN_HUB, "rollout", "start", "app", "--group", "lab", "--stages", "100")
        wait_for(lambda: len(hub_rows(fleet)) == 2, 90, "A and B to report to the hub")

        # 2. Hub down; C and D start: metadata and payload from their peers.
        fleet.stop("hub")
        assert not reachable(HUB, hub_port)
        for name in ("c", "d"):
            fleet.start(name, BIN_AGENT, "run", "--config", str(configs[name]))
        for name in ("c", "d"):
            wait_for(lambda n=name: committed(fleet, configs[n]), 120, f"{name} to install")
            assert (homes[name] / "root/opt/app/VERSION").read_bytes() == b"1.0.0"
            assert agent_status(fleet, configs[name])["results"]["waiting"] == 1
        c_result = wait_for(lambda: gossiped_results(homes["c"]) or None, 30, "C's record")
        wait_for(lambda: c_result <= gossiped_results(homes["a"]), 30, "C's result at A")

        # 3. C goes away; its result is only in its outbox and at its peers.
        fleet.stop("c")

        # 4. Hub back: everything arrives, once.
        fleet.start("hub", BIN_HUB, "serve", "--dir", str(fleet.hub_dir))
        wait_for(lambda: reachable(HUB, hub_port), 30, "the hub to listen again")
        wait_for(lambda: len(hub_rows(fleet)) == 4, 90, "every result at the hub")
        fleet.start("c", BIN_AGENT, "run", "--config", str(configs["c"]))
        for name in AGENTS:
            wait_for(lambda n=name: agent_status(fleet, configs[n])["results"]["waiting"] == 0,
                     60, f"{name}'s outbox to empty")
        rows = hub_rows(fleet)
        assert sorted(device for device, _release, _n in rows) == sorted(devices.values())
        assert all(count == 1 for _device, _release, count in rows)
        with sqlite3.connect(fleet.hub_dir / "hub.db") as db:
            bodies = {device: json.loads(body)["record"] for device, body in
                      db.execute("SELECT device_id, body FROM results")}
        for name in ("c", "d"):  # the hub sent them nothing: it was down
            assert bodies[devices[name]]["outcome"] == "installed"
            assert bodies[devices[name]]["bytes_from_hub"] == 0
            assert bodies[devices[name]]["bytes_from_peers"] > 0
    except BaseException:
        for name, config in configs.items():
            try:
                status = agent_status(fleet, config)
                print(f"--- {name}: {[(d['state'], d['reason']) for d in status['deployments']]}"
                      f" results {status['results']}")
            except Exception as exc:  # a diagnostic only
                print(f"--- {name}: no status ({exc})")
        for log in sorted(tmp_path.glob("*.log")):
            lines = log.read_text(errors="replace").splitlines()[-25:]
            print(f"--- {log.name}\n" + "\n".join(lines))
        raise
    finally:
        fleet.stop_all()
