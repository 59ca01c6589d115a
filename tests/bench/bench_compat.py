"""What the compatibility matrix costs on a big fleet (`python -m tests.bench.bench_compat
[DEVICES]`): 1,000 devices x 3,000 packages by default, every one reporting a result.

Real: a hub directory made by `init`, the published release, SQLite rows in the shapes
`hub.inventory.ingest` and `hub.devices.results_store` write (written straight, as the
fleet simulation writes devices: signing and ingesting 1,000 records has its own
benchmark), `hub.compat.gather.observe` reading and decoding them, `analyse`, and
`new_holds` for a rollout started with hold_flagged — what one controller pass does in
its read transaction. Each device differs from the base package list by 30 security
updates; 1 in 7 devices is model-3, which fails 60 % of the time, the rest 1 %.
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
import time
from pathlib import Path

from hub.compat.gather import observe, paused_gc
from hub.compat.hold import new_holds
from hub.compat.matrix import analyse
from hub.database import HubDatabase
from hub.inventory.store import encode_packages
from hub.rollouts.changes import start_rollout
from hub.rollouts.rules import RolloutPlan, RolloutRules
from hub.rollouts.store import read_rollout
from tests.inventory_packages import package_list
from tests.sim.fleet_simulation import GROUP, FleetSpec, prepare_hub


def populate(workdir: Path, devices: int) -> tuple[HubDatabase, str]:
    hub_dir, release, fleet = prepare_hub(workdir, FleetSpec(devices=devices))
    start_rollout(hub_dir, release, GROUP, RolloutPlan(
        stages=(100,), rules=RolloutRules(hold_flagged=True, automatic=False)))
    base = package_list(3000, seed=1)
    rng = random.Random(5)
    database = HubDatabase(hub_dir.database)
    with database.transaction() as db:
        for index, device in enumerate(fleet):
            rows = list(base)
            for changed in rng.sample(range(len(rows)), 30):
                name, version, arch, source, source_version = rows[changed]
                rows[changed] = (name, version + "+deb12u9", arch, source, source_version)
            model = f"model-{index % 7}"
            summary = {"os": {"id": "debian", "version_id": "12", "codename": "bookworm",
                              "pretty_name": ""}, "kernel": "6.1.0-18-amd64",
                       "architecture": "x86_64", "hardware": {"product_name": model},
                       "releases": [], "package_count": len(rows), "packages_digest": "0" * 64}
            db.execute("INSERT INTO inventory_latest (device_id, sequence, collected_at, "
                       "received_at, summary, packages, record) VALUES (?, 1, '', '', ?, ?, x'')",
                       (device.device_id, json.dumps(summary), encode_packages(rows)))
            failed = rng.random() < (0.6 if model == "model-3" else 0.01)
            db.execute("INSERT INTO results (record_id, device_id, release, outcome, reason, "
                       "started_at, finished_at, received_at, body) VALUES "
                       "(?, ?, ?, ?, '', '', '', '', x'')",
                       (f"{index:08x}", device.device_id, release,
                        "reverted" if failed else "installed"))
    return database, release


def main(devices: int = 1000) -> None:
    with tempfile.TemporaryDirectory() as workdir:
        database, release = populate(Path(workdir), devices)
        with database.read_transaction() as db:
            started = time.perf_counter()
            with paused_gc():
                observed = observe(db, release)
            gathered = time.perf_counter()
            with paused_gc():
                matrix = analyse(observed.observations)
            analysed = time.perf_counter()
            record = read_rollout(db, release, GROUP)
            assert record is not None
            before = time.perf_counter()
            holds = new_holds(db, record)
            held = time.perf_counter()
        database.close()
    print(f"{devices} devices x 3,000 packages: gather {gathered - started:.2f} s, analyse "
          f"{analysed - gathered:.2f} s ({len(matrix.combinations)} combinations, "
          f"{matrix.tested} kept by Tarone, {len(matrix.flagged)} flagged); a controller "
          f"hold check {held - before:.2f} s ({sum(len(h.devices) for h in holds)} devices "
          f"to hold)")
    for combination in matrix.flagged[:5]:
        print(f"  flagged {combination.attributes[0]}: {combination.failures}/"
              f"{len(combination.devices)} vs {combination.rest_failures}/"
              f"{combination.rest_devices}, adjusted p {combination.adjusted_p:.3g}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
