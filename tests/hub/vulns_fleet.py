"""Devices with inventories in a real hub database, for the vulnerability tests: each is
enrolled with its own key (an enrollment token, as agents do) and its inventory taken in
through the inventory store's own ingestion (a device-signed full record), so what the
vulns commands read is what `hub.inventory.store.latest_software` gives."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.device_identity import DeviceIdentity
from agent.inventory.records import Snapshot, build_record
from agent.wire.inventory import Hardware, OsRelease, SignedInventory
from hub.database import HubDatabase
from hub.devices.enrollment import create_token, enroll_device
from hub.inventory.ingest import ingest_inventory
from tests.hub.test_device_api import enroll_request

BOOKWORM = OsRelease(id="debian", version_id="12", codename="bookworm",
                     pretty_name="Debian GNU/Linux 12 (bookworm)")
BULLSEYE = OsRelease(id="debian", version_id="11", codename="bullseye",
                     pretty_name="Debian GNU/Linux 11 (bullseye)")

BOOKWORM_PACKAGES = [
    # (binary, version, arch, source, source version)
    ("libssl3", "3.0.11-1~deb12u2", "amd64", "openssl", "3.0.11-1~deb12u2"),
    ("libc6", "2.36-9+deb12u4", "amd64", "glibc", "2.36-9+deb12u4"),
    ("openssh-server", "1:9.2p1-2+deb12u2", "amd64", "openssh", "1:9.2p1-2+deb12u2"),
    ("sudo", "1.9.13p3-1+deb12u1", "amd64", "sudo", "1.9.13p3-1+deb12u1"),
    ("zlib1g", "1:1.2.13.dfsg-1", "amd64", "zlib", "1:1.2.13.dfsg-1"),
    ("libcurl4", "7.88.1-10+deb12u8", "amd64", "curl", "7.88.1-10+deb12u8"),
    ("libxml2", "2.9.14+dfsg-1.3~deb12u1", "amd64", "libxml2", "2.9.14+dfsg-1.3~deb12u1"),
    ("python3-pil", "9.4.0-1.1+deb12u1", "amd64", "pillow", "9.4.0-1.1+deb12u1"),
    ("libpng16-16", "1.6.39-2+b1", "amd64", "libpng1.6", "1.6.39-2"),
]
BULLSEYE_PACKAGES = [
    ("libssl1.1", "1.1.1w-0+deb11u1", "amd64", "openssl", "1.1.1w-0+deb11u1"),
    ("sudo", "1.9.5p2-3+deb11u1", "amd64", "sudo", "1.9.5p2-3+deb11u1"),
    ("openssh-server", "1:8.4p1-5+deb11u3", "amd64", "openssh", "1:8.4p1-5+deb11u3"),
    ("libxml2", "2.9.10+dfsg-6.7+deb11u4", "amd64", "libxml2", "2.9.10+dfsg-6.7+deb11u4"),
]


def add_device(database: HubDatabase, name: str, group: str, os: OsRelease,
               packages: list[tuple[str, str, str, str, str]]) -> str:
    token = create_token(database, "ab" * 32)
    identity = DeviceIdentity(Ed25519PrivateKey.generate())
    enroll_device(database, enroll_request(identity, token.secret, name=name, hostname=name,
                                           group=group))
    snapshot = Snapshot(os=os, kernel="6.1.0-28-amd64", architecture="x86_64",
                        hardware=Hardware(cpu_count=2, memory_bytes=4 << 30), packages=packages)
    record = build_record(snapshot, identity.device_id, 1, "2026-12-02T10:00:00+00:00", None)
    ingest_inventory(database, SignedInventory.sign(record, identity.private_key))
    return identity.device_id
