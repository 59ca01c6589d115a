"""`meisitong-agent status` says when the hub stopped answering and where the metadata in
use came from (issue 11 item 5).

Real processes: `meisitong-hub serve` on 127.0.0.1, two agents of one site on
127.0.0.2-3 gossiping over mutual TLS. With the hub up both refresh from it; with the
hub stopped each says "hub unreachable since …" and takes its metadata from the other
(TUF-verified); restarted meanwhile, an agent keeps the time the hub was first missed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.processes import BIN_AGENT, Fleet, free_port, wait_for

pytestmark = pytest.mark.slow

HUB = "127.0.0.1"
AGENTS = {"a": "127.0.0.2", "b": "127.0.0.3"}


def status(fleet: Fleet, config: Path) -> dict:
    return json.loads(fleet.command(BIN_AGENT, "status", "--config", str(config), "--json").stdout)


def status_text(fleet: Fleet, config: Path) -> str:
    return fleet.command(BIN_AGENT, "status", "--config", str(config)).stdout


def test_status_says_since_when_the_hub_is_unreachable_and_that_peers_served_metadata(tmp_path):
    hub_port = free_port(HUB)
    fleet = Fleet(tmp_path, tmp_path / "hub", f"http://{HUB}:{hub_port}")
    gossip_ports = {name: free_port(address) for name, address in AGENTS.items()}
    seed = f"{AGENTS['a']}:{gossip_ports['a']}"
    configs: dict[str, Path] = {}
    try:
        token = fleet.serve_new_hub()
        for name, address in AGENTS.items():
            home = tmp_path / name
            (home / "root").mkdir(parents=True)
            configs[name] = home / "agent.toml"
            configs[name].write_text(
                f'[agent]\nstate_dir = "{home / "state"}"\nname = "{name}"\ngroup = "lab"\n'
                f'site = "branch"\ninstall_prefix = "{home / "root"}"\npoll_interval = 1\n'
                f'[p2p]\nlisten = "{address}:{free_port(address)}"\nlocal_discovery = false\n'
                f'[gossip]\nlisten = "{address}:{gossip_ports[name]}"\nseeds = ["{seed}"]\n'
                "interval = 0.5\nhub_sync_interval = 1\nretry_hub_after = 5\n"
            )
            fleet.command(BIN_AGENT, "enroll", "--config", str(configs[name]),
                          "--hub", fleet.hub_url, "--token", token)
            fleet.start(name, BIN_AGENT, "run", "--config", str(configs[name]))

        for name in AGENTS:
            wait_for(lambda n=name: status(fleet, configs[n])["metadata_source"].get("source")
                     == "hub", 60, f"{name} to refresh from the hub")
            report = status(fleet, configs[name])
            assert report["hub_contact"]["reachable"] is True
            assert "reachable, last answered at" in status_text(fleet, configs[name])
            assert "source   the hub, at" in status_text(fleet, configs[name])

        fleet.stop("hub")
        for name in AGENTS:
            wait_for(lambda n=name: status(fleet, configs[n])["metadata_source"].get("source")
                     == "site peers", 60, f"{name} to refresh from its peer")
        report = status(fleet, configs["a"])
        contact = report["hub_contact"]
        assert contact["reachable"] is False
        assert contact["error"].startswith(f"no answer from the hub at {fleet.hub_url}")
        assert report["metadata_source"]["peers"] == [f"{AGENTS['b']}:{gossip_ports['b']}"]
        text = status_text(fleet, configs["a"])
        assert f"hub unreachable since {contact['since']}" in text
        assert f"source   site peer {AGENTS['b']}:{gossip_ports['b']} (hub unreachable)" in text

        # A restart does not forget since when the hub has been missing.
        fleet.stop("a")
        fleet.start("a", BIN_AGENT, "run", "--config", str(configs["a"]))
        wait_for(lambda: status(fleet, configs["a"])["metadata_source"]["at"]
                 > report["metadata_source"]["at"], 60, "a to refresh again after its restart")
        assert status(fleet, configs["a"])["hub_contact"]["since"] == contact["since"]
    except BaseException:
        for log in sorted(tmp_path.glob("*.log")):
            lines = log.read_text(errors="replace").splitlines()[-25:]
            print(f"--- {log.name}\n" + "\n".join(lines))
        raise
    finally:
        fleet.stop_all()


def test_without_peers_status_says_the_hub_is_unreachable_and_the_metadata_is_the_hubs(
        tmp_path):
    """Gossip off: with the hub stopped every refresh fails, and the metadata in use is
    still the hub's last."""
    hub_port = free_port(HUB)
    fleet = Fleet(tmp_path, tmp_path / "hub", f"http://{HUB}:{hub_port}")
    try:
        token = fleet.serve_new_hub()
        home = tmp_path / "alone"
        (home / "root").mkdir(parents=True)
        config = home / "agent.toml"
        config.write_text(
            f'[agent]\nstate_dir = "{home / "state"}"\nname = "alone"\ngroup = "lab"\n'
            f'install_prefix = "{home / "root"}"\npoll_interval = 1\n'
            f'[p2p]\nlisten = "{AGENTS["a"]}:{free_port(AGENTS["a"])}"\n'
            "local_discovery = false\n[gossip]\nenabled = false\n"
        )
        fleet.command(BIN_AGENT, "enroll", "--config", str(config), "--hub", fleet.hub_url,
                      "--token", token)
        fleet.start("alone", BIN_AGENT, "run", "--config", str(config))
        wait_for(lambda: status(fleet, config)["metadata_source"].get("source") == "hub",
                 60, "a refresh from the hub")

        fleet.stop("hub")
        wait_for(lambda: status(fleet, config)["status"].get("metadata", "")
                 .startswith("refresh FAILED"), 60, "a refresh to fail")
        report = status(fleet, config)
        assert report["hub_contact"]["reachable"] is False
        source = report["metadata_source"]
        refreshed_at = source["at"]
        assert source == {"source": "hub", "peers": [], "at": refreshed_at}
        failed_at = report["status"]["metadata"].removeprefix("refresh FAILED at ")
        wait_for(lambda: status(fleet, config)["status"]["metadata"]
                 != f"refresh FAILED at {failed_at}", 30, "another refresh to fail")
        assert status(fleet, config)["metadata_source"] == source  # still what is in use
        # Said once at ERROR by the daemon, not three urllib3 warnings per file per poll.
        log = (tmp_path / "alone.log").read_text()
        assert "Retrying" not in log
        assert log.count(" ERROR agent.daemon: refreshing metadata: cannot connect") == 1
        text = status_text(fleet, config)
        assert f"hub unreachable since {report['hub_contact']['since']}" in text
        assert f"source   the hub, at {refreshed_at}" in text
    except BaseException:
        for log in sorted(tmp_path.glob("*.log")):
            print(f"--- {log.name}\n" + "\n".join(log.read_text(errors="replace")
                                                   .splitlines()[-25:]))
        raise
    finally:
        fleet.stop_all()
