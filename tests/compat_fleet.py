"""A small fleet on a real hub directory for the compatibility matrix's tests: devices
enrolled through the real `enroll_device`, inventories through the real
`ingest_inventory` (device-signed records built by the agent's own `build_record`),
results through the real `ingest_result`."""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass

from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.device_identity import DeviceIdentity
from agent.inventory.records import Snapshot, build_record
from agent.wire.enrollment import EnrollmentToken, EnrollRequest
from agent.wire.inventory import Hardware, OsRelease, PackageRow, SignedInventory
from agent.wire.result import Outcome, ResultRecord, SignedResult
from hub.cli.main import main
from hub.database import HubDatabase
from hub.devices.enrollment import enroll_device
from hub.devices.results_store import ingest_result
from hub.hub_dir import HubDir
from hub.inventory.ingest import ingest_inventory
from tests.fleet import tar_bytes

RELEASE = """name = "tool"
version = "2.0.0"
severity = "moderate"
category = "application"
[install]
type = "file-tree"
root = "/opt/tool"
"""
TARGET = "releases/tool/2.0.0/tool.tar"
COMMON_PACKAGES: list[PackageRow] = [
    ("libc6", "2.36-9+deb12u4", "amd64", "glibc", "2.36-9+deb12u4"),
    ("openssl", "3.0.11-1~deb12u2", "amd64", "openssl", "3.0.11-1~deb12u2"),
    ("bash", "5.2.15-2+b2", "amd64", "bash", "5.2.15-2"),
]


def run(hub: HubDir, *args: str):
    return CliRunner().invoke(main, [*args, "--dir", str(hub.root)])


def make_hub(tmp_path) -> HubDir:
    directory = tmp_path / "hub"
    assert CliRunner().invoke(main, ["init", "--dir", str(directory), "--json"]).exit_code == 0
    return publish_tool(HubDir(directory), tmp_path)


def publish_tool(hub: HubDir, workdir) -> HubDir:
    (workdir / "RELEASE.toml").write_text(RELEASE)
    (workdir / "tool.tar").write_bytes(tar_bytes({"bin/tool": b"x"}))
    result = run(hub, "publish", str(workdir / "RELEASE.toml"), str(workdir / "tool.tar"))
    assert result.exit_code == 0, result.output
    return hub


@dataclass
class Device:
    identity: DeviceIdentity
    name: str
    group: str

    @property
    def device_id(self) -> str:
        return self.identity.device_id


def enroll(hub: HubDir, name: str, group: str) -> Device:
    identity = DeviceIdentity(Ed25519PrivateKey.generate())
    token = EnrollmentToken.parse(hub.enrollment_token.read_text().strip())
    request = EnrollRequest(
        token_secret=token.secret, device_id=identity.device_id,
        public_key=base64.b64encode(identity.public_key_raw).decode(),
        name=name, hostname=name, group=group, site="hq",
    ).signed_with(identity.private_key)
    database = HubDatabase(hub.database)
    try:
        enroll_device(database, request)
    finally:
        database.close()
    return Device(identity, name, group)


def send_inventory(hub: HubDir, device: Device, model: str, version_id: str = "12",
                   extra: list[PackageRow] = ()) -> None:
    snapshot = Snapshot(
        os=OsRelease(id="debian", version_id=version_id, codename="bookworm"),
        kernel="6.1.0-18-amd64", architecture="x86_64",
        hardware=Hardware(cpu_count=4, cpu_model="Test CPU", product_name=model,
                          memory_bytes=8 << 30, disk_total_bytes=100 << 30,
                          disk_free_bytes=40 << 30),
        packages=[*COMMON_PACKAGES, *extra],
    )
    record = build_record(snapshot, device.device_id, 1, "2026-11-25T00:00:00+00:00", None)
    database = HubDatabase(hub.database)
    try:
        assert ingest_inventory(database, SignedInventory.sign(
            record, device.identity.private_key)).stored
    finally:
        database.close()


def report(hub: HubDir, device: Device, outcome: Outcome) -> None:
    record = ResultRecord(
        record_id=str(uuid.uuid4()), device_id=device.device_id, release=TARGET,
        name="tool", version="2.0.0", outcome=outcome,
        started_at="2026-11-25T00:00:00+00:00", finished_at="2026-11-25T00:01:00+00:00",
    )
    database = HubDatabase(hub.database)
    try:
        ingest_result(database, SignedResult.sign(record, device.identity.private_key))
    finally:
        database.close()
