"""The README's demo, end to end: a hub and three agents as separate processes on
127.0.0.1-4, real TUF metadata, real libtorrent peers, real HTTP. Two endpoints install
the release; the third fails its health check, reverts, and is byte-identical to before.
"""

import pytest

from hub.demo_fleet import run_demo

pytestmark = pytest.mark.slow


def test_demo_fleet_installs_on_two_and_reverts_the_broken_one_byte_identically(tmp_path):
    summary = run_demo(tmp_path, payload_mib=16, timeout=180)
    outcomes = {name: agent["outcome"] for name, agent in summary["agents"].items()}
    assert outcomes == {
        "endpoint-1": "installed",
        "endpoint-2": "installed",
        "endpoint-3": "reverted",
    }
    broken = summary["agents"]["endpoint-3"]
    assert broken["after"] == broken["before"]
    assert "health check failed" in broken["reason"]
    for name in ("endpoint-1", "endpoint-2"):
        assert summary["agents"][name]["after"] != summary["agents"][name]["before"]
    # Agents fetch from each other: the hub sends fewer than three copies.
    sent = summary["hub_bytes_sent"]
    assert 0 < sent["seeder"] + sent["web_seed"] < 3 * summary["payload_bytes"]
