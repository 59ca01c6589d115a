"""Which Debian package, and which version of it, each published dpkg release carries.

A release says only `install.type = "dpkg"` and `install.package` (the binary package);
its version is the Meisitong release's own (PEP 440), not the package's. The smallest
sound way to know the Debian version is the one the agent itself trusts: the payload.
It is the signed target (its SHA-256 is in the admin-signed metadata), kept in the hub's
payload directory, and its control file says Package, Version and Source (with the
source version when it differs). So this reads the .deb's control (python-debian's
DebFile), and nothing has to be declared twice or can disagree with what installs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from debian.debfile import DebError, DebFile

from agent.errors import AgentError
from agent.wire.release import DpkgInstall, ReleaseInfo
from hub.database import HubDatabase
from hub.hub_dir import HubDir
from hub.repository.tuf_repository import HubRepository

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PackageRelease:
    """A published release that installs one Debian binary package."""

    name: str
    version: str
    target: str
    package: str
    package_version: str
    source: str
    source_version: str

    @property
    def spec(self) -> str:
        return f"{self.name}@{self.version}"


def deb_package(path: str) -> tuple[str, str, str, str]:
    """(package, version, source, source version) from a .deb's control file."""
    control = DebFile(path).debcontrol()
    package, version = control["Package"], control["Version"]
    source, _, rest = control.get("Source", package).partition(" ")
    source_version = rest.strip().strip("()") or version
    return package, version, source, source_version


def package_releases(hub_dir: HubDir, database: HubDatabase) -> list[PackageRelease]:
    """Every published dpkg release whose payload the hub holds and can read."""
    rows = {row["target"]: row for row in database.query(
        "SELECT target, name, version FROM releases")}
    if not rows:
        return []
    targets = HubRepository(hub_dir).release_targets()
    found = []
    for target, row in sorted(rows.items()):
        signed = targets.get(target)
        if signed is None:
            continue
        try:
            info = ReleaseInfo.from_custom(signed.unrecognized_fields.get("custom"), target)
        except AgentError:
            continue
        if not isinstance(info.manifest.install, DpkgInstall):
            continue
        try:
            package, version, source, source_version = deb_package(
                str(hub_dir.payloads / target))
        except (OSError, DebError, KeyError) as exc:
            log.warning("release %s: cannot read its .deb's control: %s", target, exc)
            continue
        found.append(PackageRelease(row["name"], row["version"], target, package, version,
                                    source, source_version))
    return found
