"""`meisitong-hub devices show`: an unknown device is a clear error (exit 1, no
traceback); an enrolled device without inventory says so; with one, the text and --json
agree with the store."""

from __future__ import annotations

import base64
import json

from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.device_identity import DeviceIdentity
from agent.inventory.records import build_record
from agent.wire.enrollment import EnrollRequest
from agent.wire.inventory import SignedInventory
from hub.cli.main import main
from hub.database import HubDatabase
from hub.devices.enrollment import create_token, enroll_device
from hub.inventory.ingest import ingest_inventory
from tests.inventory_packages import package_list, snapshot


def enrolled(hub_dir, name: str) -> DeviceIdentity:
    identity = DeviceIdentity(Ed25519PrivateKey.generate())
    database = HubDatabase(hub_dir / "hub.db")
    try:
        token = create_token(database, "cd" * 32)
        enroll_device(database, EnrollRequest(
            token_secret=token.secret, device_id=identity.device_id,
            public_key=base64.b64encode(identity.public_key_raw).decode(), name=name,
            hostname=name, group="lab", site="berlin").signed_with(identity.private_key))
    finally:
        database.close()
    return identity


def test_devices_show_unknown_none_and_with_inventory(initialized_hub_dir):
    runner = CliRunner()
    unknown = runner.invoke(main, ["devices", "show", "nope", "--dir", str(initialized_hub_dir)])
    assert unknown.exit_code == 1 and "no enrolled device 'nope'" in unknown.output
    assert "Traceback" not in unknown.output

    identity = enrolled(initialized_hub_dir, "laptop-1")
    empty = runner.invoke(main, ["devices", "show", "laptop-1", "--dir",
                                 str(initialized_hub_dir)])
    assert empty.exit_code == 0 and "no inventory received yet" in empty.output

    record = build_record(snapshot(package_list(25)), identity.device_id, 1,
                          "2026-12-02T10:00:00+00:00", None)
    database = HubDatabase(initialized_hub_dir / "hub.db")
    try:
        ingest_inventory(database, SignedInventory.sign(record, identity.private_key))
    finally:
        database.close()
    text = runner.invoke(main, ["devices", "show", "laptop-1", "--dir",
                                str(initialized_hub_dir)]).output
    assert "Debian GNU/Linux 12 (bookworm)" in text and "25 installed" in text
    assert "6.1.0-18-amd64" in text and "first inventory, 25 packages" in text
    shown = json.loads(runner.invoke(main, ["devices", "show", identity.device_id,
                                            "--packages", "--json", "--dir",
                                            str(initialized_hub_dir)]).output)
    assert shown["inventory"]["package_count"] == 25
    assert len(shown["inventory"]["packages"]) == 25
    assert shown["inventory"]["hardware"]["memory_bytes"] == 8 << 30
