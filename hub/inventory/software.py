"""The hub's view of what software a device runs: the shape every consumer reads.

Inventory ingestion (hub/inventory/) fills it from device-signed records; vulnerability
matching (hub/vulns/), readiness and the compatibility matrix read it. One shape, so a
matcher never depends on how a record travelled or was diffed.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class InstalledPackage:
    """One installed Debian binary package, as `dpkg-query` reports it.

    `source` / `source_version` are the source package it was built from: security
    feeds (Debian's tracker, OSV's Debian ecosystem) are keyed by source package, while
    a device lists binaries; `source_version` differs from `version` for binNMUs and
    for binaries whose version the source overrides."""

    name: str
    version: str
    architecture: str
    source: str
    source_version: str


@dataclass(frozen=True)
class OperatingSystem:
    """From /etc/os-release: `id` (debian), `version_id` (12), `codename` (bookworm)."""

    id: str
    version_id: str
    codename: str
    pretty_name: str = ""


@dataclass(frozen=True)
class DeviceSoftware:
    device_id: str
    os: OperatingSystem
    kernel: str
    architecture: str
    packages: tuple[InstalledPackage, ...] = field(default_factory=tuple)
    reported_at: str = ""
