"""What `meisitong-hub devices show DEVICE` prints (and its --json): the device row, its
latest inventory (OS, kernel, hardware, releases, package count or the packages), and
the recent changes. One plain dict, so the console can show the same thing."""

from __future__ import annotations

from typing import Any

from hub.database import HubDatabase
from hub.errors import UnknownDeviceError
from hub.inventory.store import history, latest


def resolve_device(database: HubDatabase, spec: str) -> str:
    """The device id of `spec` (an id or a unique name)."""
    rows = database.query("SELECT device_id FROM devices WHERE device_id = ? OR name = ?",
                          (spec, spec))
    if not rows:
        raise UnknownDeviceError(f"no enrolled device {spec!r} (see `devices list`)")
    if len(rows) > 1:
        raise UnknownDeviceError(f"several devices are named {spec!r} "
                                 f"({', '.join(row['device_id'] for row in rows)}); "
                                 "give the device id")
    return str(rows[0]["device_id"])


def device_report(database: HubDatabase, spec: str, packages: bool = False,
                  changes: int = 10) -> dict[str, Any]:
    device_id = resolve_device(database, spec)
    device = database.device(device_id)
    assert device is not None
    report: dict[str, Any] = {
        "device_id": device_id, "name": device.name, "hostname": device.hostname,
        "group": device.group, "site": device.site, "status": device.status,
        "enrolled_at": device.enrolled_at, "last_seen": device.last_seen, "inventory": None,
        "changes": [],
    }
    found = latest(database, device_id)
    if found is None:
        return report
    software = found.software
    report["inventory"] = {
        "sequence": found.sequence, "collected_at": found.collected_at,
        "received_at": found.received_at,
        "os": {"id": software.os.id, "version_id": software.os.version_id,
               "codename": software.os.codename, "pretty_name": software.os.pretty_name},
        "kernel": software.kernel, "architecture": software.architecture,
        "hardware": vars(found.hardware).copy(),
        "releases": [vars(held).copy() for held in found.releases],
        "package_count": found.package_count, "packages_digest": found.packages_digest,
    }
    if packages:
        report["inventory"]["packages"] = [vars(package).copy()
                                           for package in software.packages]
    report["changes"] = [{
        "sequence": change.sequence, "collected_at": change.collected_at,
        "received_at": change.received_at, "first": change.first,
        "package_count": change.package_count,
        "packages": [vars(package).copy() for package in change.packages],
        "facts": {key: list(pair) for key, pair in change.facts.items()},
        "releases": [list(item) for item in change.releases],
    } for change in history(database, device_id, changes)]
    return report
