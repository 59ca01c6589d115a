"""Readiness end to end, real processes (issue 14 item 3): `meisitong-hub serve` on
127.0.0.1, agents A and B (`meisitong-agent run`) on 127.0.0.2-3, each with a stand-in
dpkg-query printing its package list from a file; C is enrolled and never runs.

The release requires this machine's OS id, at least 1 MiB of RAM, `libfoo >= 1.0-1` and
no telnetd.
A has libfoo 1.0-1; B has 1.0~rc1-1 (`~` sorts before the release). Before any
rollout, `readiness` predicts A ready, B not-ready for the libfoo requirement, C
unknown. Rolled out: A installs; B reports not-ready with the reason the prediction
gave, word for word, and has downloaded and changed nothing, however often it looks.
B's libfoo is upgraded but telnetd (required absent) appears: one more not-ready, for
telnetd. telnetd goes: at its next look B is ready and installs.
"""

from __future__ import annotations

import json
import sqlite3

import pytest

from agent.inventory.probe import os_release
from tests.fleet import tar_bytes
from tests.inventory_dpkg import fake_dpkg_query, write_packages
from tests.processes import BIN_AGENT, BIN_HUB, Fleet, free_port, wait_for

pytestmark = pytest.mark.slow

HUB = "127.0.0.1"
AGENTS = {"a": "127.0.0.2", "b": "127.0.0.3", "c": "127.0.0.4"}
OS_ID = os_release()["id"] or "debian"
RELEASE = f"""name = "app"
version = "1.0.0"
severity = "important"
category = "application"
[install]
type = "file-tree"
root = "/opt/app"
[requires]
os = {{ id = "{OS_ID}" }}
min_ram = "1 MiB"
[[requires.packages]]
name = "libfoo"
version = ">= 1.0-1"
[[requires.packages]]
name = "telnetd"
absent = true
"""


def rows(libfoo: str, telnetd: bool = False) -> list[tuple[str, str, str, str, str]]:
    return [("libc6", "2.36-9", "amd64", "glibc", "2.36-9"),
            ("libfoo", libfoo, "amd64", "foo", libfoo),
            *([("telnetd", "0.17+2.4-2", "amd64", "inetutils", "2.4-2")] if telnetd else [])]


def outcomes(fleet: Fleet, device: str) -> list[str]:
    return [r["outcome"] for r in results(fleet).get(device, [])]


def results(fleet: Fleet) -> dict[str, list[dict]]:
    with sqlite3.connect(fleet.hub_dir / "hub.db") as db:
        found: dict[str, list[dict]] = {}
        for device, body in db.execute("SELECT device_id, body FROM results ORDER BY rowid"):
            found.setdefault(device, []).append(json.loads(body)["record"])
    return found


def inventoried(fleet: Fleet, device_id: str) -> bool:
    with sqlite3.connect(fleet.hub_dir / "hub.db") as db:
        return db.execute("SELECT 1 FROM inventory_latest WHERE device_id = ?",
                          (device_id,)).fetchone() is not None


def test_the_readiness_prediction_agrees_with_what_agents_then_report(tmp_path):
    hub_port = free_port(HUB)
    fleet = Fleet(tmp_path, tmp_path / "hub", f"http://{HUB}:{hub_port}")
    configs, devices, status_files, homes = {}, {}, {}, {}
    try:
        token = fleet.serve_new_hub()
        for name, address in AGENTS.items():
            home = homes[name] = tmp_path / name
            (home / "root").mkdir(parents=True)
            status_files[name] = home / "dpkg-status"
            write_packages(status_files[name], rows("1.0~rc1-1" if name == "b" else "1.0-1"))
            dpkg_query = fake_dpkg_query(home, status_files[name])
            configs[name] = home / "agent.toml"
            configs[name].write_text(
                f'[agent]\nstate_dir = "{home / "state"}"\nname = "{name}"\ngroup = "lab"\n'
                f'install_prefix = "{home / "root"}"\npoll_interval = 1\n'
                f'[p2p]\nlisten = "{address}:{free_port(address)}"\nlocal_discovery = false\n'
                "web_seed_after = 0\n[gossip]\nenabled = false\n"
                f'[inventory]\ncheck_interval = 0.5\nmin_spacing = 0\ninterval = 3600\n'
                f'dpkg_query = "{dpkg_query}"\ndpkg_status = "{status_files[name]}"\n')
            devices[name] = fleet.command(BIN_AGENT, "enroll", "--config", str(configs[name]),
                                          "--hub", fleet.hub_url, "--token",
                                          token).stdout.split()[2]
        for name in ("a", "b"):
            fleet.start(name, BIN_AGENT, "run", "--config", str(configs[name]))
        (tmp_path / "RELEASE.toml").write_text(RELEASE)
        (tmp_path / "app.tar").write_bytes(tar_bytes({"VERSION": b"1.0.0"}))
        fleet.command(BIN_HUB, "publish", str(tmp_path / "RELEASE.toml"),
                      str(tmp_path / "app.tar"))
        for name in ("a", "b"):
            wait_for(lambda n=name: inventoried(fleet, devices[n]), 60, f"{name}'s inventory")

        # The prediction, before any rollout.
        predicted = json.loads(fleet.command(BIN_HUB, "readiness", "app", "--group", "lab",
                                             "--format", "json").stdout)
        by_name = {d["name"]: d for d in predicted["devices"]}
        assert predicted["counts"] == {"ready": 1, "not-ready": 1, "unknown": 1}
        assert (by_name["a"]["status"], by_name["c"]["status"]) == ("ready", "unknown")
        assert by_name["b"]["status"] == "not-ready"
        assert by_name["b"]["reason"] == ("requirements not met: package libfoo >= 1.0-1 "
                                          "(found libfoo 1.0~rc1-1)")

        # What the agents then report.
        fleet.command(BIN_HUB, "rollout", "start", "app", "--group", "lab", "--stages", "100")
        reported = wait_for(lambda: (found := results(fleet)).get(devices["a"]) and
                            found.get(devices["b"]) and found, 90, "A's and B's results")
        assert [r["outcome"] for r in reported[devices["a"]]] == ["installed"]
        [b_result] = reported[devices["b"]]
        assert b_result["outcome"] == "not-ready"
        assert b_result["reason"] == f"not ready: {by_name['b']['reason']}"
        b_root, b_state = homes["b"] / "root", homes["b"] / "state"
        assert list(b_root.iterdir()) == []  # nothing changed
        assert not any(p.is_file() for p in (b_state / "downloads").rglob("*"))

        # B's libfoo is upgraded but telnetd appears: one new not-ready, for telnetd
        # (the unmet requirements changed; the same ones are not reported again).
        write_packages(status_files["b"], rows("1.0-1", telnetd=True))
        wait_for(lambda: len(results(fleet)[devices["b"]]) == 2, 60, "B's second not-ready")
        assert results(fleet)[devices["b"]][1]["reason"] == (
            "not ready: requirements not met: no package telnetd (found telnetd 0.17+2.4-2)")
        # B becomes ready: it proceeds at its next look.
        write_packages(status_files["b"], rows("1.0-1"))
        wait_for(lambda: outcomes(fleet, devices["b"]) == ["not-ready", "not-ready",
                                                            "installed"],
                 60, "B to install once ready")
        assert (b_root / "opt/app/VERSION").read_bytes() == b"1.0.0"
    except BaseException:
        for log in sorted(tmp_path.glob("*.log")):
            lines = log.read_text(errors="replace").splitlines()[-30:]
            print(f"--- {log.name}\n" + "\n".join(lines))
        raise
    finally:
        fleet.stop_all()
