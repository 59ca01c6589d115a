"""Predict, before any rollout, which devices a release's requirements let it reach.

Each device's facts come from its latest inventory (hub/inventory/store.py) and go
through `agent.readiness.unmet_requirements`, the function the agent itself runs before
downloading, so a prediction and what the agent then reports differ only where the
device changed since that inventory (free disk space above all: the inventory's figure
is from when it was collected, shown with each row). Devices without an inventory are
"unknown", never guessed ready.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from agent.errors import AgentError
from agent.readiness import DeviceFacts, Unmet, reason, unmet_requirements
from agent.wire.release import ReleaseInfo
from agent.wire.requirements import Requirements
from hub.database import HubDatabase
from hub.errors import HubError, UnknownGroupError
from hub.hub_dir import HubDir
from hub.inventory.store import decode_packages
from hub.repository.tuf_repository import HubRepository
from hub.rollouts.changes import find_release

READY, NOT_READY, UNKNOWN = "ready", "not-ready", "unknown"


class ReleaseMetadataError(HubError):
    """The release's signed target (and so its requirements) cannot be read."""


@dataclass(frozen=True)
class DeviceReadiness:
    device_id: str
    name: str
    group: str
    status: str
    """ready, not-ready or unknown (no inventory yet)"""
    unmet: tuple[Unmet, ...] = ()
    inventory_at: str = ""
    """When the inventory the prediction read was collected."""

    @property
    def reason(self) -> str:
        if self.status == UNKNOWN:
            return "no inventory yet"
        return reason(self.unmet) if self.unmet else ""

    def as_dict(self) -> dict[str, object]:
        return {"device_id": self.device_id, "name": self.name, "group": self.group,
                "status": self.status, "reason": self.reason,
                "unmet": [{"kind": u.kind, "requirement": u.requirement, "found": u.found}
                          for u in self.unmet],
                "inventory_at": self.inventory_at}


@dataclass(frozen=True)
class ReadinessReport:
    release: str
    group: str | None
    requirements: Requirements | None
    devices: tuple[DeviceReadiness, ...]

    def count(self, status: str) -> int:
        return sum(1 for device in self.devices if device.status == status)


def facts_of(summary: dict[str, Any], packages: bytes, names: set[str]) -> DeviceFacts:
    """What the agent's own look (agent/readiness_facts.py) reads, from an inventory row
    of hub/inventory/store.py (`summary` JSON, `packages` blob): the package list is
    decoded only when the requirements name packages, and only those are kept (a
    prediction over a thousand devices of 3,000 packages builds no package objects)."""
    installed: dict[str, tuple[str, ...]] = {}
    if names:
        for name, version, _arch, _source, _source_version in decode_packages(packages):
            if name in names:
                installed[name] = (*installed.get(name, ()), version)
    os_release, hardware = summary["os"], summary["hardware"]
    return DeviceFacts(os_id=os_release["id"], os_version_id=os_release["version_id"],
                       architecture=summary["architecture"], kernel=summary["kernel"],
                       memory_bytes=hardware["memory_bytes"],
                       disk_free_bytes=hardware["disk_free_bytes"], packages=installed)


def release_requirements(hub_dir: HubDir, target: str) -> Requirements | None:
    signed = HubRepository(hub_dir).release_targets().get(target)
    if signed is None:
        raise ReleaseMetadataError(f"release {target}: no signed target in the repository")
    try:
        info = ReleaseInfo.from_custom(signed.unrecognized_fields.get("custom"), target)
    except AgentError as exc:
        raise ReleaseMetadataError(f"release {target}: {exc}") from None
    return info.manifest.requires


def predict(hub_dir: HubDir, release_spec: str, group: str | None = None) -> ReadinessReport:
    database = HubDatabase(hub_dir.database)
    try:
        target = str(find_release(database, release_spec)["target"])
        requires = release_requirements(hub_dir, target)
        query = "SELECT device_id, name, grp FROM devices WHERE status != 'removed'"
        params: tuple[str, ...] = ()
        if group is not None:
            query, params = query + " AND grp = ?", (group,)
        rows = database.query(query + " ORDER BY grp, name, device_id", params)
        if group is not None and not rows:
            raise UnknownGroupError(f"--group {group!r}: no enrolled device is in it")
        names = {package.name for package in requires.packages} if requires else set()
        devices = []
        for row in rows:
            inventory = database.query(
                "SELECT summary, packages, collected_at FROM inventory_latest "
                "WHERE device_id = ?", (row["device_id"],))
            if not inventory:
                devices.append(DeviceReadiness(row["device_id"], row["name"], row["grp"],
                                               UNKNOWN))
                continue
            facts = facts_of(json.loads(inventory[0]["summary"]),
                             bytes(inventory[0]["packages"]), names)
            unmet = unmet_requirements(requires, facts)
            devices.append(DeviceReadiness(row["device_id"], row["name"], row["grp"],
                                           NOT_READY if unmet else READY, unmet,
                                           inventory[0]["collected_at"]))
    finally:
        database.close()
    return ReadinessReport(target, group, requires, tuple(devices))
