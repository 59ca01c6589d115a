"""An idle, healthy device stays "seen" at the hub (issue 11 item 5): real processes,
`meisitong-hub serve` on 127.0.0.1 and `meisitong-agent run` on 127.0.0.2 with nothing to
install. Its signed heartbeats advance `last_seen` in `devices list`, and `plan` counts
it, where before it was dropped as "not seen for 14 days" once its enrollment was old.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta

import pytest

from tests.fleet import tar_bytes
from tests.processes import BIN_AGENT, BIN_HUB, Fleet, free_port, wait_for

pytestmark = pytest.mark.slow

HUB, AGENT = "127.0.0.1", "127.0.0.2"
LONG_AGO = (datetime.now(UTC) - timedelta(days=30)).isoformat(timespec="seconds")
RELEASE = """name = "app"
version = "1.0.0"
severity = "important"
category = "application"
[install]
type = "file-tree"
root = "/opt/app"
"""


def devices(fleet: Fleet) -> list[dict]:
    return json.loads(fleet.command(BIN_HUB, "devices", "list", "--json").stdout)


def never(fleet: Fleet) -> dict[str, str]:
    report = json.loads(fleet.command(BIN_HUB, "plan", "app", "--json").stdout)
    return {device: why for group in report["groups"] for device, why in group["never"].items()}


def test_an_idle_devices_last_seen_advances_and_plan_counts_it(tmp_path):
    hub_port = free_port(HUB)
    fleet = Fleet(tmp_path, tmp_path / "hub", f"http://{HUB}:{hub_port}")
    try:
        token = fleet.serve_new_hub()
        home = tmp_path / "agent"
        (home / "root").mkdir(parents=True)
        config = home / "agent.toml"
        config.write_text(
            f'[agent]\nstate_dir = "{home / "state"}"\nname = "idle"\ngroup = "lab"\n'
            f'install_prefix = "{home / "root"}"\npoll_interval = 3600\n'
            f'[hub]\nheartbeat_interval = 1\n'
            f'[p2p]\nlisten = "{AGENT}:{free_port(AGENT)}"\nlocal_discovery = false\n'
            "[gossip]\nenabled = false\n"
        )
        device = fleet.command(BIN_AGENT, "enroll", "--config", str(config), "--hub",
                               fleet.hub_url, "--token", token).stdout.split()[2]
        (tmp_path / "RELEASE.toml").write_text(RELEASE)
        (tmp_path / "app.tar").write_bytes(tar_bytes({"VERSION": b"1.0.0"}))
        fleet.command(BIN_HUB, "publish", str(tmp_path / "RELEASE.toml"),
                      str(tmp_path / "app.tar"))
        # Enrolled a month ago and silent since, as far as the hub's database says.
        with sqlite3.connect(fleet.hub_dir / "hub.db") as db:
            db.execute("UPDATE devices SET last_seen = ?", (LONG_AGO,))
        assert never(fleet) == {"idle": "not seen for 14 days"}  # keyed by name

        fleet.start("agent", BIN_AGENT, "run", "--config", str(config))
        first = wait_for(lambda: next((d["last_seen"] for d in devices(fleet)
                                      if d["last_seen"] > LONG_AGO), None),
                         30, "the idle device to be seen")
        assert [d["device_id"] for d in devices(fleet)] == [device]
        wait_for(lambda: devices(fleet)[0]["last_seen"] > first, 30, "last_seen to advance")
        assert never(fleet) == {}
        status = json.loads(fleet.command(BIN_AGENT, "status", "--config", str(config),
                                          "--json").stdout)
        assert status["deployments"] == [] and status["results"]["delivered"] == 0  # idle
        with sqlite3.connect(fleet.hub_dir / "hub.db") as db:
            assert db.execute("SELECT COUNT(*) FROM results").fetchone() == (0,)
    except BaseException:
        for log in sorted(tmp_path.glob("*.log")):
            print(f"--- {log.name}\n" + "\n".join(log.read_text(errors="replace")
                                                   .splitlines()[-25:]))
        raise
    finally:
        fleet.stop_all()
