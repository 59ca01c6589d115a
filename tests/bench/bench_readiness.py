"""`python -m tests.bench.bench_readiness [DEVICES] [PACKAGES]`: how long `readiness`
takes to predict a fleet, on a real hub directory (devices enrolled and inventories
ingested through the hub's own code), and what one evaluation costs.

Prints the prediction's wall time (release requiring an OS range, RAM, a kernel range
and two packages), and the per-device evaluation alone."""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from agent.inventory.records import build_record
from agent.readiness import unmet_requirements
from agent.wire.inventory import SignedInventory
from hub.database import HubDatabase
from hub.hub_dir import HubDir
from hub.inventory.ingest import ingest_inventory
from hub.readiness.prediction import facts_of, predict
from tests.compat_fleet import enroll, make_hub, run
from tests.fleet import tar_bytes
from tests.inventory_packages import package_list, snapshot

RELEASE = """name = "big"
version = "1.0.0"
severity = "moderate"
category = "application"
[install]
type = "file-tree"
root = "/opt/big"
[requires]
os = { id = "debian", version = ">= 12" }
min_ram = "1 GiB"
kernel = ">= 6.1"
[[requires.packages]]
name = "libc6"
version = ">= 2.36"
[[requires.packages]]
name = "telnetd"
absent = true
"""


def main(devices: int = 200, packages: int = 3000) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        workdir = Path(scratch)
        hub: HubDir = make_hub(workdir)
        (workdir / "BIG.toml").write_text(RELEASE)
        (workdir / "big.tar").write_bytes(tar_bytes({"bin/big": b"x"}))
        assert run(hub, "publish", str(workdir / "BIG.toml"), str(workdir / "big.tar")) \
            .exit_code == 0
        rows = [*package_list(packages - 1, seed=3),
                ("libc6", "2.36-9+deb12u4", "amd64", "glibc", "2.36-9+deb12u4")]
        telnetd = ("telnetd", "0.17+2.4-2", "amd64", "inetutils", "2.4-2")
        database = HubDatabase(hub.database)
        for index in range(devices):
            device = enroll(hub, f"d{index}", "lab")
            held = [*rows, telnetd] if index % 2 else rows
            record = build_record(snapshot(held), device.device_id, 1,
                                  "2026-11-25T00:00:00+00:00", None)
            ingest_inventory(database, SignedInventory.sign(record,
                                                            device.identity.private_key))
        started = time.perf_counter()
        report = predict(hub, "big")
        took = time.perf_counter() - started
        [row] = database.query("SELECT summary, packages FROM inventory_latest LIMIT 1")
        facts = facts_of(json.loads(row["summary"]), bytes(row["packages"]),
                         {"libc6", "telnetd"})
        started = time.perf_counter()
        for _ in range(1000):
            unmet_requirements(report.requirements, facts)
        each = (time.perf_counter() - started) / 1000
        database.close()
    counts = {s: report.count(s) for s in ("ready", "not-ready", "unknown")}
    print(f"{devices} devices x {packages} packages: prediction {took:.2f} s "
          f"({took / devices * 1000:.1f} ms a device, reading and decoding its inventory "
          f"included); one evaluation {each * 1e6:.0f} us; {counts}")


if __name__ == "__main__":
    main(*(int(arg) for arg in sys.argv[1:3]))
