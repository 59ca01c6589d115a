"""Inventory end to end, real processes (issue 14 item 1): `meisitong-hub serve` on
127.0.0.1, two agents of one site (`meisitong-agent run`) on 127.0.0.2-3, each with a
stand-in dpkg-query printing its package list from a file (3,000 packages on A).

- A's first (full) record reaches the hub directly; `devices show` prints it.
- B cannot reach the hub (its hub URL points at a closed port): its record, signed by B,
  arrives through A by site gossip and A's hand-over.
- A's packages change: a compact diff arrives, and the history says what changed.
- The hub loses A's inventory (a restored backup): A's next diff is answered 409 and A
  sends a full record, which the hub takes.
- A tampered copy of B's record is refused with 403; the hub goes on serving.
"""

from __future__ import annotations

import json
import sqlite3
import urllib.error
import urllib.request

import pytest

from tests.inventory_dpkg import fake_dpkg_query, write_packages
from tests.inventory_packages import package_list, upgraded
from tests.processes import BIN_AGENT, BIN_HUB, Fleet, free_port, wait_for

pytestmark = pytest.mark.slow

HUB = "127.0.0.1"
AGENTS = {"a": "127.0.0.2", "b": "127.0.0.3"}


def show(fleet: Fleet, device: str) -> dict:
    return json.loads(fleet.command(BIN_HUB, "devices", "show", device, "--json").stdout)


def stored_record(fleet: Fleet, device_id: str) -> dict:
    with sqlite3.connect(fleet.hub_dir / "hub.db") as db:
        row = db.execute("SELECT record FROM inventory_latest WHERE device_id = ?",
                         (device_id,)).fetchone()
    return json.loads(row[0]) if row else {}


def sequence_of(fleet: Fleet, device: str) -> int:
    inventory = show(fleet, device)["inventory"]
    return inventory["sequence"] if inventory else 0


def test_inventories_reach_the_hub_directly_through_a_peer_as_diffs_and_full_on_409(tmp_path):
    hub_port = free_port(HUB)
    fleet = Fleet(tmp_path, tmp_path / "hub", f"http://{HUB}:{hub_port}")
    gossip_ports = {name: free_port(address) for name, address in AGENTS.items()}
    seed = f"{AGENTS['a']}:{gossip_ports['a']}"
    rows = {"a": package_list(3000, seed=1), "b": package_list(200, seed=7)}
    homes, configs, devices, status_files = {}, {}, {}, {}
    try:
        token = fleet.serve_new_hub()
        for name, address in AGENTS.items():
            home = homes[name] = tmp_path / name
            (home / "root").mkdir(parents=True)
            status_files[name] = home / "dpkg-status"
            write_packages(status_files[name], rows[name])
            dpkg_query = fake_dpkg_query(home, status_files[name])
            configs[name] = home / "agent.toml"
            body = (
                f'[agent]\nstate_dir = "{home / "state"}"\nname = "{name}"\ngroup = "lab"\n'
                f'site = "branch"\ninstall_prefix = "{home / "root"}"\npoll_interval = 2\n'
                f'[p2p]\nlisten = "{address}:{free_port(address)}"\nlocal_discovery = false\n'
                f'[gossip]\nlisten = "{address}:{gossip_ports[name]}"\nseeds = ["{seed}"]\n'
                "interval = 0.5\nhub_sync_interval = 1\nretry_hub_after = 5\n"
                f'[inventory]\ncheck_interval = 0.5\nmin_spacing = 1\ninterval = 3600\n'
                f'dpkg_query = "{dpkg_query}"\ndpkg_status = "{status_files[name]}"\n'
            )
            configs[name].write_text(body)
            enrolled = fleet.command(BIN_AGENT, "enroll", "--config", str(configs[name]),
                                     "--hub", fleet.hub_url, "--token", token).stdout
            devices[name] = enrolled.split()[2]
        # B never reaches the hub itself from now on.
        configs["b"].write_text(configs["b"].read_text().replace(
            "[p2p]", f'[hub]\nurl = "http://{HUB}:{free_port(HUB)}"\n[p2p]'))
        for name in AGENTS:
            fleet.start(name, BIN_AGENT, "run", "--config", str(configs[name]))

        # Directly, and through the site peer.
        wait_for(lambda: sequence_of(fleet, "a"), 60, "A's inventory at the hub")
        report = show(fleet, "a")
        assert report["inventory"]["package_count"] == 3000  # the "rc" ones left out
        assert report["inventory"]["os"]["id"]  # this machine's os-release
        assert report["inventory"]["hardware"]["memory_bytes"] > 0  # psutil, in the probe
        assert report["changes"][0]["first"]
        wait_for(lambda: sequence_of(fleet, "b"), 90, "B's inventory, relayed by A")
        b_record = stored_record(fleet, devices["b"])
        assert b_record["record"]["device_id"] == devices["b"]  # B's own signed record
        assert show(fleet, "b")["inventory"]["package_count"] == 200
        text = fleet.command(BIN_HUB, "devices", "show", "b").stdout
        assert "200 installed" in text and "first inventory" in text

        # A package change: a diff.
        first = sequence_of(fleet, "a")
        write_packages(status_files["a"], upgraded(rows["a"], 5))
        wait_for(lambda: sequence_of(fleet, "a") > first, 60, "A's diff")
        assert stored_record(fleet, devices["a"])["record"]["kind"] == "diff"
        change = show(fleet, "a")["changes"][0]
        assert not change["first"] and len(change["packages"]) == 7  # 5 + removed + added
        listed = json.loads(fleet.command(
            BIN_HUB, "devices", "show", "a", "--packages", "--json").stdout)
        assert sorted((p["name"], p["version"], p["architecture"], p["source"],
                       p["source_version"]) for p in listed["inventory"]["packages"]) == sorted(
            upgraded(rows["a"], 5))

        # The hub loses A's inventory: the next diff gets a 409, then a full record.
        with sqlite3.connect(fleet.hub_dir / "hub.db") as db:
            db.execute("DELETE FROM inventory_bases WHERE device_id = ?", (devices["a"],))
            db.execute("DELETE FROM inventory_latest WHERE device_id = ?", (devices["a"],))
        third = upgraded(upgraded(rows["a"], 5), 3, seed=9)
        write_packages(status_files["a"], third)
        wait_for(lambda: sequence_of(fleet, "a"), 60, "A's full record after the 409")
        assert stored_record(fleet, devices["a"])["record"]["kind"] == "full"
        assert show(fleet, "a")["inventory"]["package_count"] == len(
            {(name, arch) for name, _v, arch, _s, _sv in third})
        assert "(HTTP 409)" in (tmp_path / "a.log").read_text()

        # A tampered record is refused; the hub goes on.
        b_record["record"]["kernel"] = "6.1.0-evil"
        request = urllib.request.Request(f"{fleet.hub_url}/api/v1/inventory",
                                         data=json.dumps(b_record).encode(), method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 403
        assert show(fleet, "b")["inventory"]["kernel"] != "6.1.0-evil"
        assert fleet.processes["hub"].poll() is None
    except BaseException:
        for log in sorted(tmp_path.glob("*.log")):
            lines = log.read_text(errors="replace").splitlines()[-30:]
            print(f"--- {log.name}\n" + "\n".join(lines))
        raise
    finally:
        fleet.stop_all()
