"""Which Debian release a feed statement and a device are about.

The Debian security tracker names releases by codename (`bookworm`), OSV's Debian
ecosystem by major version (`Debian:12`), and a device's /etc/os-release gives both
(`VERSION_CODENAME`, `VERSION_ID`) or only one (testing and unstable have no VERSION_ID).
Everything here is normalised to the codename, so a `Debian:11` range is never applied
to a bookworm device: the release is part of what a statement says, and ignoring it is
how a scanner reports a CVE that bookworm fixed long ago, or never had.
"""

from __future__ import annotations

from dataclasses import dataclass

from hub.inventory.software import OperatingSystem

CODENAMES: dict[str, str] = {
    "etch": "4", "lenny": "5",
    "squeeze": "6", "wheezy": "7", "jessie": "8", "stretch": "9", "buster": "10",
    "bullseye": "11", "bookworm": "12", "trixie": "13", "forky": "14", "duke": "15",
    "sid": "",
}
"""Codename -> major version (sid never has one)."""
_BY_VERSION = {version: codename for codename, version in CODENAMES.items() if version}

ANY_RELEASE = ""
"""The release of an OSV entry for the bare `Debian` ecosystem: it names no release."""


def release_of_version(version: str) -> str:
    """`12` or `12.5` -> `bookworm`; a version we have no codename for -> `debian-N`, so
    it still matches only a device of that version."""
    major = version.split(".", 1)[0]
    return _BY_VERSION.get(major, f"debian-{major}")


@dataclass(frozen=True)
class DeviceRelease:
    """A device's Debian release, or why it has none a Debian feed can speak of."""

    codename: str
    """'' when the device runs no Debian release we can name (then `why` says)."""
    why: str = ""

    @property
    def known(self) -> bool:
        return bool(self.codename)


def device_release(os: OperatingSystem) -> DeviceRelease:
    """The release a Debian feed's statements must name to apply to this device.

    Only `ID=debian`: a derivative (Ubuntu, Raspbian) rebuilds packages with versions of
    its own, which Debian's fixed versions do not order."""
    if os.id != "debian":
        return DeviceRelease("", f"os-release ID is {os.id or 'empty'!r}, not debian: Debian "
                                 "feeds do not describe its packages")
    if os.codename:
        return DeviceRelease(os.codename)
    if os.version_id:
        return DeviceRelease(release_of_version(os.version_id))
    return DeviceRelease("", "os-release gives neither VERSION_CODENAME nor VERSION_ID")
