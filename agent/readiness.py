"""Is this device ready for a release? The one function both sides ask.

The agent asks it before downloading, with facts it reads right then
(agent/readiness_facts.py); the hub asks it for every device with the facts of its
latest inventory (hub/readiness/). One pure function over one facts shape, so the
prediction and what agents then report cannot disagree but where the facts changed.

Unknown facts (an inventory without RAM, a device without VERSION_ID) are unmet, never
assumed: "ready" must mean the requirement was seen to hold.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from agent.byte_sizes import human_size
from agent.wire.requirements import (
    Clause,
    PackageRequirement,
    Requirements,
    debian_arch,
    debian_version,
    parse_range,
)


@dataclass(frozen=True)
class DeviceFacts:
    os_id: str = ""
    os_version_id: str = ""
    architecture: str = ""
    """uname's machine (x86_64) or Debian's name (amd64): compared as Debian's."""
    kernel: str = ""
    memory_bytes: int = 0
    disk_free_bytes: int = 0
    packages: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Installed versions by package name (several for multi-arch packages); only the
    packages the requirements name need be here."""


@dataclass(frozen=True)
class Unmet:
    kind: str
    """os, os-version, architecture, ram, disk, kernel, package"""
    requirement: str
    found: str

    def __str__(self) -> str:
        return f"{self.requirement} (found {self.found})"


def in_range(version: str, clauses: tuple[Clause, ...]) -> bool:
    """Whether `version` satisfies every clause (dpkg ordering). False for text that is
    no Debian version: what cannot be compared is not known to hold."""
    if not clauses:
        return True
    try:
        found = debian_version(version)
    except ValueError:
        return False
    for clause in clauses:
        wanted = debian_version(clause.version)
        holds = {">=": found >= wanted, "<=": found <= wanted, ">": found > wanted,
                 "<": found < wanted, "=": found == wanted, "!=": found != wanted}
        if not holds[clause.operator]:
            return False
    return True


def unmet_requirements(requires: Requirements | None, facts: DeviceFacts) -> tuple[Unmet, ...]:
    """Every requirement of `requires` that `facts` do not meet, in the order the release
    declares them; empty when the device is ready."""
    if requires is None:
        return ()
    unmet: list[Unmet] = []
    if requires.os is not None:
        wanted = requires.os
        if facts.os_id != wanted.id:
            unmet.append(Unmet("os", f"os {wanted.id}", _shown(facts.os_id)))
        elif wanted.version and not in_range(facts.os_version_id, parse_range(wanted.version)):
            unmet.append(Unmet("os-version", f"os {wanted.id} {wanted.version}",
                               f"{wanted.id} {_shown(facts.os_version_id)}"))
    if requires.architectures:
        allowed = {debian_arch(name) for name in requires.architectures}
        if debian_arch(facts.architecture) not in allowed:
            unmet.append(Unmet("architecture",
                               f"architecture {' or '.join(requires.architectures)}",
                               _shown(facts.architecture)))
    if requires.min_ram and facts.memory_bytes < requires.min_ram:
        unmet.append(Unmet("ram", f"RAM >= {human_size(requires.min_ram)}",
                           human_size(facts.memory_bytes) if facts.memory_bytes else "unknown"))
    if requires.min_free_disk and facts.disk_free_bytes < requires.min_free_disk:
        unmet.append(Unmet("disk", f"free disk >= {human_size(requires.min_free_disk)}",
                           f"{human_size(facts.disk_free_bytes)} free"))
    if requires.kernel and not in_range(facts.kernel, parse_range(requires.kernel)):
        unmet.append(Unmet("kernel", f"kernel {requires.kernel}", _shown(facts.kernel)))
    for package in requires.packages:
        if (missing := _package_unmet(package, facts.packages.get(package.name, ()))):
            unmet.append(missing)
    return tuple(unmet)


def _package_unmet(package: PackageRequirement, installed: tuple[str, ...]) -> Unmet | None:
    clauses = parse_range(package.version) if package.version else ()
    matching = [version for version in installed if in_range(version, clauses)]
    described = f"package {package.name}" + (f" {package.version}" if package.version else "")
    found = f"{package.name} {', '.join(installed)}" if installed else "not installed"
    if package.absent:
        return Unmet("package", f"no {described}", found) if matching else None
    return None if matching else Unmet("package", described, found)


def reason(unmet: tuple[Unmet, ...]) -> str:
    """The not-ready reason agents report and the prediction shows, word for word."""
    return "requirements not met: " + "; ".join(str(item) for item in unmet)


def _shown(value: str) -> str:
    return value or "unknown"


