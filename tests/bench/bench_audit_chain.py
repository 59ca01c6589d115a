"""What the signed audit chain costs (hub/audit/): per entry written, and to verify.

Baseline: the audit log before the chain, a bare INSERT into `audit` (in a database of
its own, so the chain's verify does not see those rows). Measured: an entry through
`HubDatabase.audit` (last entry read, canonical JSON, SHA-256, Ed25519 signature by the
timestamp key, two rows): each in a transaction of its own (one fsync each, as a CLI
command writes) and many in one transaction (the compute alone); then exporting and
verifying a chain of N entries (`python -m tests.bench.bench_audit_chain 100000`).
Real SQLite (WAL, synchronous=FULL) in a hub directory made by `init`.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from hub.audit.export import export_chain, served_roots
from hub.audit.verify import verify_chain
from hub.database import HubDatabase, utc_now
from hub.hub_dir import HubDir
from hub.hub_init import initialize_hub

SINGLE = 200
ENTRIES = 20_000
DETAIL = {"release": "app@1.2.3", "group": "lab", "stages": [2, 25, 100]}

Write = Callable[[sqlite3.Connection, int], None]


def per_entry(database: HubDatabase, write: Write, count: int, batched: bool) -> float:
    started = time.perf_counter()
    if batched:
        with database.transaction() as db:
            for number in range(count):
                write(db, number)
    else:
        for number in range(count):
            with database.transaction() as db:
                write(db, number)
    return (time.perf_counter() - started) / max(1, count)


def main() -> None:
    entries = int(sys.argv[1]) if len(sys.argv) > 1 else ENTRIES
    with tempfile.TemporaryDirectory() as scratch:
        hub = HubDir(Path(scratch) / "hub")
        initialize_hub(hub, None, "127.0.0.1:1", "", "127.0.0.1:2")
        database = HubDatabase(hub.database)
        baseline = HubDatabase.create(Path(scratch) / "baseline.db")

        def bare(db: sqlite3.Connection, number: int) -> None:
            db.execute(
                "INSERT INTO audit (at, actor, action, subject, detail) VALUES (?,?,?,?,?)",
                (utc_now(), "admin:bench", "rollout.start", f"s{number}",
                 json.dumps(DETAIL, sort_keys=True)))

        def chained(db: sqlite3.Connection, number: int) -> None:
            database.audit(db, "admin:bench", "rollout.start", f"s{number}", **DETAIL)

        base_each = per_entry(baseline, bare, SINGLE, batched=False)
        chain_each = per_entry(database, chained, SINGLE, batched=False)
        base_batch = per_entry(baseline, bare, 5000, batched=True)
        chain_batch = per_entry(database, chained, max(0, entries - SINGLE - 2), batched=True)
        total = database.query("SELECT count(*) FROM audit_chain")[0][0]
        baseline.close()

        started = time.perf_counter()
        exported = export_chain(database)
        exporting = time.perf_counter() - started
        database.close()
        roots, timestamp = served_roots(hub), (hub.metadata / "timestamp.json").read_bytes()
        started = time.perf_counter()
        report = verify_chain(exported, roots, timestamp)
        verifying = time.perf_counter() - started
    assert report.ok, report.problems[:3]
    print("per entry written")
    print(f"  baseline: bare INSERT, own transaction    {base_each * 1e6:8.0f} us   1.00x")
    print(f"  chained + signed, own transaction        {chain_each * 1e6:8.0f} us   "
          f"{chain_each / base_each:4.2f}x")
    print(f"  baseline: bare INSERT, one transaction    {base_batch * 1e6:8.1f} us   1.00x")
    print(f"  chained + signed, one transaction        {chain_batch * 1e6:8.1f} us   "
          f"{chain_batch / base_batch:4.1f}x")
    print(f"verify a chain of {total} entries: export {exporting:.2f} s, verify "
          f"{verifying:.2f} s ({verifying / total * 1e6:.0f} us per entry)")


if __name__ == "__main__":
    main()
