"""How long `evidence export` and `python -m hub.evidence_verify` take on a realistic hub:
N devices enrolled through `enroll_device`, 3 releases rolled out to 4 groups, a
device-signed result per device and release through `ingest_result` (2 % reverted, 5 %
of devices silent), then export and verify (in a separate process, as an auditor would).

    python -m tests.bench.evidence_time [DEVICES] [WORKDIR]
"""

from __future__ import annotations

import base64
import random
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.wire.enrollment import EnrollmentToken, EnrollRequest, device_id_for
from agent.wire.result import ResultRecord, SignedResult
from hub.cli.main import main as hub_cli
from hub.database import HubDatabase
from hub.devices.enrollment import enroll_device
from hub.devices.results_store import ingest_result
from hub.hub_dir import HubDir
from tests.fleet import tar_bytes

GROUPS = ("web", "db", "office", "kiosk")
RELEASES = (("ssl", "3.0.1", "critical", "security"), ("kernel", "6.1.9", "important",
                                                       "security"),
            ("font", "1.1", "low", "application"))


def cli(*args: str) -> str:
    result = CliRunner().invoke(hub_cli, list(args))
    if result.exit_code != 0:
        raise RuntimeError(result.output)
    return result.output


def build(root: Path, devices: int) -> HubDir:
    rng = random.Random(3)
    cli("init", "--dir", str(root / "hub"), "--json")
    hub = HubDir(root / "hub")
    for name, version, severity, category in RELEASES:
        (root / f"{name}.toml").write_text(
            f'name = "{name}"\nversion = "{version}"\nseverity = "{severity}"\n'
            f'category = "{category}"\n[install]\ntype = "file-tree"\nroot = "/opt/{name}"\n')
        (root / f"{name}.tar").write_bytes(tar_bytes({f"bin/{name}": b"x"}))
        cli("publish", "--dir", str(hub.root), str(root / f"{name}.toml"),
            str(root / f"{name}.tar"))
    token = EnrollmentToken.parse(hub.enrollment_token.read_text().strip())
    database = HubDatabase(hub.database)
    keys = []
    started = time.perf_counter()
    for index in range(devices):
        key = Ed25519PrivateKey.generate()
        raw = key.public_key().public_bytes_raw()
        device_id = device_id_for(raw)
        request = EnrollRequest(token_secret=token.secret, device_id=device_id,
                                public_key=base64.b64encode(raw).decode(),
                                name=f"host-{index}", hostname=f"host-{index}",
                                group=GROUPS[index % 4], site=f"site-{index % 40}"
                                ).signed_with(key)
        enroll_device(database, request)
        keys.append((device_id, key))
    enrolled = time.perf_counter()
    (root / "policy.toml").write_text("deadline_hours = { critical = 72, important = 168 }\n")
    for group in GROUPS:
        cli("policy", "set", "--dir", str(hub.root), group, str(root / "policy.toml"))
        for name, *_ in RELEASES:
            cli("rollout", "start", "--dir", str(hub.root), name, "--group", group,
                "--stages", "100")
    now = datetime.now(UTC)
    records = 0
    for device_id, key in keys:
        if rng.random() < 0.05:
            continue
        for name, version, *_ in RELEASES:
            finished = now + timedelta(minutes=rng.uniform(1, 60))
            outcome = "reverted" if rng.random() < 0.02 else "installed"
            record = ResultRecord(
                record_id=str(uuid.uuid4()), device_id=device_id,
                release=f"releases/{name}/{version}/{name}.tar", name=name, version=version,
                outcome=outcome, started_at=now.isoformat(), finished_at=finished.isoformat())
            ingest_result(database, SignedResult.sign(record, key))
            records += 1
    database.close()
    print(f"built: {devices} devices enrolled in {enrolled - started:.1f} s, {records} "
          f"records ingested in {time.perf_counter() - enrolled:.1f} s")
    return hub


def main() -> None:
    devices = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    with tempfile.TemporaryDirectory(dir=sys.argv[2] if len(sys.argv) > 2 else None) as work:
        root = Path(work)
        hub = build(root, devices)
        started = time.perf_counter()
        cli("evidence", "export", "--dir", str(hub.root), str(root / "bundle"))
        exported = time.perf_counter()
        size = sum(p.stat().st_size for p in (root / "bundle").rglob("*") if p.is_file())
        done = subprocess.run([sys.executable, "-m", "hub.evidence_verify",
                               str(root / "bundle")], capture_output=True, text=True)
        verified = time.perf_counter()
        print(done.stdout.strip(), done.stderr.strip())
        print(f"export {exported - started:.2f} s ({size / 1e6:.1f} MB); verify "
              f"{verified - exported:.2f} s in a new process (exit {done.returncode})")


if __name__ == "__main__":
    main()
