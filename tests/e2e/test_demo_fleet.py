"""The README's demo, end to end, run as the README runs it (`python -m tests.demo_fleet`,
which `make demo` calls): a hub and three agents as separate processes on 127.0.0.1-4,
real TUF metadata, real libtorrent peers, real HTTP. Two endpoints install the release;
the third fails its health check, reverts, and is byte-identical to before.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_demo_fleet_installs_on_two_and_reverts_the_broken_one_byte_identically(tmp_path):
    summary_file = tmp_path / "summary.json"
    done = subprocess.run(
        [sys.executable, "-m", "tests.demo_fleet", "--payload-mib", "16", "--timeout", "180",
         "--summary-json", str(summary_file)],
        capture_output=True, text=True, timeout=400, cwd=Path(__file__).parents[2],
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "demo: OK" in done.stdout
    summary = json.loads(summary_file.read_text())
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
