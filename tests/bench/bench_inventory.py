"""Inventory record sizes, costs, and what collecting leaves in the daemon's memory.

1. Sizes (signed record as it travels, bytes): a full record and a diff for a generated
   3,000-package list (tests/inventory_packages.py: epochs, +debNuM, binNMUs, sources
   named apart from their binaries, multiarch), the diff after a security update of 12
   packages with one removed and one installed; the same for this machine's own
   `dpkg-query` list (through the real probe); and the uncompressed JSON of the list
   as the baseline.
2. Costs: building and signing each record on the agent, ingesting each at the hub
   (verify, unpack, apply, digest, write) into a real SQLite hub database.
3. The daemon's memory: a fresh process that imports agent.daemon, then runs the
   reporter's collect-build-sign-post 10 times for 3,000 packages (the probe is a child
   process; the post goes to a closed port), prints its RSS before and after, against
   the same process doing nothing.

Run: `python -m tests.bench.bench_inventory`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.device_identity import DeviceIdentity
from agent.inventory.child_build import snapshot_of
from agent.inventory.records import build_record
from agent.wire.inventory import SignedInventory
from hub.database import HubDatabase
from hub.inventory.ingest import ingest_inventory
from tests.inventory_packages import package_list, snapshot, upgraded

AT = "2026-12-02T10:00:00+00:00"

_RSS_PROBE = """
import sys, time, trio
from pathlib import Path
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
import agent.daemon  # everything an idle daemon has imported
from agent.config import InventorySection
from agent.device_identity import DeviceIdentity
from agent.inventory.reporter import InventoryReporter
from agent.journal import Journal
from tests.inventory_dpkg import fake_dpkg_query, write_packages
from tests.inventory_packages import package_list, upgraded

def rss():
    for line in open('/proc/self/status'):
        if line.startswith('VmRSS:'):
            return int(line.split()[1]) * 1024

work = Path(sys.argv[1]); runs = int(sys.argv[2])
rows = package_list(3000)
status = work / 'status'; write_packages(status, rows)
section = InventorySection(dpkg_query=str(fake_dpkg_query(work, status)), dpkg_status=status,
                           min_spacing=0)
clock = [1.8e9]
reporter = InventoryReporter(section, work / 'inventory.json',
                             DeviceIdentity(Ed25519PrivateKey.generate()),
                             Journal(work / 'journal.db'), 'http://127.0.0.1:9', 2, work,
                             clock=lambda: clock[0])
async def main():
    before = rss()
    for run in range(runs):
        write_packages(status, upgraded(rows, 5 + run, seed=run) if run % 2 else rows)
        clock[0] += 10
        await reporter.step()
    print(before, rss())
trio.run(main)
"""


def signed_size(record, key) -> int:
    return len(SignedInventory.sign(record, key).to_bytes())


def sizes(label: str, rows, key, device_id: str) -> list[tuple[str, object]]:
    started = time.perf_counter()
    full = build_record(snapshot(rows), device_id, 1, AT, None)
    full_seconds = time.perf_counter() - started
    after = upgraded(rows, 12)
    started = time.perf_counter()
    diff = build_record(snapshot(after), device_id, 2, AT, full)
    diff_seconds = time.perf_counter() - started
    raw = len(json.dumps([list(row) for row in rows], separators=(",", ":")))
    return [
        (f"{label}: packages", len(rows)),
        (f"{label}: package list as plain JSON (bytes)", raw),
        (f"{label}: full record, signed (bytes)", signed_size(full, key)),
        (f"{label}: diff after 12 updates, 1 removal, 1 install (bytes)",
         signed_size(diff, key)),
        (f"{label}: build full / diff on the agent (ms)",
         f"{full_seconds * 1000:.1f} / {diff_seconds * 1000:.1f}"),
    ]


def hub_ingest(key, identity, rows) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as directory:
        database = HubDatabase.create(Path(directory) / "hub.db")
        with database.transaction() as db:
            db.execute("INSERT INTO devices (device_id, public_key, name, hostname, grp, site, "
                       "status, enrolled_at) VALUES (?, ?, 'x', 'x', 'lab', 'default', "
                       "'accepted', ?)", (identity.device_id, identity.public_key_raw, AT))
        full = SignedInventory.sign(build_record(snapshot(rows), identity.device_id, 1, AT,
                                                 None), key)
        diff = SignedInventory.sign(build_record(snapshot(upgraded(rows, 12)),
                                                 identity.device_id, 2, AT, full.record), key)
        started = time.perf_counter()
        ingest_inventory(database, full)
        middle = time.perf_counter()
        ingest_inventory(database, diff)
        done = time.perf_counter()
        database.close()
    return (middle - started) * 1000, (done - middle) * 1000


def daemon_rss(runs: int) -> tuple[int, int]:
    with tempfile.TemporaryDirectory() as directory:
        done = subprocess.run([sys.executable, "-c", _RSS_PROBE, directory, str(runs)],
                              capture_output=True, text=True, timeout=600, check=True)
    before, after = done.stdout.split()
    return int(before), int(after)


def main() -> None:
    key = Ed25519PrivateKey.generate()
    identity = DeviceIdentity(key)
    lines = sizes("generated", package_list(3000), key, identity.device_id)
    probe = subprocess.run([sys.executable, "-m", "agent.inventory.probe"],
                           capture_output=True, timeout=120, check=True)
    own = snapshot_of(json.loads(probe.stdout), []).packages
    if own:
        lines += sizes("this machine's dpkg", own, key, identity.device_id)
    full_ms, diff_ms = hub_ingest(key, identity, package_list(3000))
    lines.append(("hub ingest, 3,000 packages: full / diff (ms)",
                  f"{full_ms:.1f} / {diff_ms:.1f}"))
    for runs in (0, 10):
        before, after = daemon_rss(runs)
        lines.append((f"daemon process RSS before / after {runs} collections (MiB)",
                      f"{before / 2**20:.1f} / {after / 2**20:.1f} "
                      f"(+{(after - before) / 2**20:.1f})"))
    width = max(len(label) for label, _ in lines)
    for label, value in lines:
        print(f"{label:<{width}}  {value}")


if __name__ == "__main__":
    main()
