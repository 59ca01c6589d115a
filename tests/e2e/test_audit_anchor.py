"""The audit chain's anchor end to end, real processes: `meisitong-hub serve` on
127.0.0.1 re-signs the timestamp as the audit head moves ([audit] anchor_interval), an
agent (`meisitong-agent run` on 127.0.0.2) verifies that timestamp and signs the head
back in its heartbeats, and `meisitong-hub audit verify` — run while `audit` and `devices`
commands write from another process — passes with the device's witness, then catches a
tail cut below the head the device witnessed even after the timestamp is re-anchored.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess

import pytest

from tests.processes import BIN_AGENT, BIN_HUB, Fleet, free_port, wait_for

pytestmark = pytest.mark.slow

HUB, AGENT = "127.0.0.1", "127.0.0.2"


def audit_verify(fleet: Fleet) -> tuple[int, dict]:
    done = subprocess.run([BIN_HUB, "audit", "verify", "--dir", str(fleet.hub_dir), "--json"],
                          capture_output=True, text=True, timeout=120)
    return done.returncode, json.loads(done.stdout)


def test_a_served_hub_anchors_its_audit_head_and_an_agent_witnesses_it(tmp_path):
    hub_port = free_port(HUB)
    fleet = Fleet(tmp_path, tmp_path / "hub", f"http://{HUB}:{hub_port}")
    try:
        fleet.command(BIN_HUB, "init", "--listen", f"{HUB}:{hub_port}",
                      "--seed-listen", f"{HUB}:{free_port(HUB)}")
        with (fleet.hub_dir / "hub.toml").open("a") as config:
            config.write("\n[audit]\nanchor_interval = 1\n")
        token = (fleet.hub_dir / "enrollment-token").read_text().strip()
        fleet.start("hub", BIN_HUB, "serve", "--dir", str(fleet.hub_dir))
        home = tmp_path / "agent"
        (home / "root").mkdir(parents=True)
        agent_config = home / "agent.toml"
        agent_config.write_text(
            f'[agent]\nstate_dir = "{home / "state"}"\nname = "witness"\ngroup = "lab"\n'
            f'install_prefix = "{home / "root"}"\npoll_interval = 1\n'
            f'[hub]\nheartbeat_interval = 1\n'
            f'[p2p]\nlisten = "{AGENT}:{free_port(AGENT)}"\nlocal_discovery = false\n'
            "[gossip]\nenabled = false\n")
        wait_for(lambda: (fleet.hub_dir / "hub.db").exists(), 10, "the hub database")
        device = wait_for(lambda: _enroll(fleet, agent_config, token), 30, "enrollment")
        fleet.start("agent", BIN_AGENT, "run", "--config", str(agent_config))

        # Entries written by another process while serve anchors: `token create` audits.
        for _ in range(3):
            fleet.command(BIN_HUB, "token", "create")
        head = json.loads(fleet.command(BIN_HUB, "audit", "--json", "--limit", "1").stdout)[0]

        def witnessed() -> dict | None:
            code, report = audit_verify(fleet)
            assert code == 0, report["problems"]
            return report if report["witnessed_through"] >= head["seq"] and \
                report["witnessed_devices"] == [device] else None

        report = wait_for(witnessed, 60, f"device {device} to witness entry {head['seq']}")
        assert report["timestamp_anchor"]["seq"] >= head["seq"]

        fleet.stop("agent")
        with sqlite3.connect(fleet.hub_dir / "hub.db") as db:  # cut the witnessed entry
            (audit_id,) = db.execute("SELECT audit_id FROM audit_chain WHERE seq = ?",
                                     (head["seq"],)).fetchone()
            db.execute("DELETE FROM audit_chain WHERE seq >= ?", (head["seq"],))
            db.execute("DELETE FROM audit WHERE id >= ?", (audit_id,))
        fleet.command(BIN_HUB, "token", "create")  # the chain grows again past the cut

        def reanchored() -> dict | None:
            code, report = audit_verify(fleet)
            stamp = report["timestamp_anchor"] or {}
            anchored = {"seq": stamp.get("seq"), "hash": stamp.get("hash")}
            return report if code == 1 and anchored == report["head"] else None

        report = wait_for(reanchored, 30, "the hub to anchor the rewritten chain")
        assert [p["kind"] for p in report["problems"]] == ["rewritten"], report["problems"]
        assert report["first_bad_seq"] == head["seq"]
        assert device in report["problems"][0]["message"]
    except BaseException:
        for log in sorted(tmp_path.glob("*.log")):
            print(f"--- {log.name}\n" + "\n".join(log.read_text(errors="replace")
                                                   .splitlines()[-25:]))
        raise
    finally:
        fleet.stop_all()


def _enroll(fleet: Fleet, agent_config, token: str) -> str | None:
    try:
        done = fleet.command(BIN_AGENT, "enroll", "--config", str(agent_config), "--hub",
                             fleet.hub_url, "--token", token)
    except RuntimeError:
        return None  # the hub is not listening yet
    return done.stdout.split()[2]
