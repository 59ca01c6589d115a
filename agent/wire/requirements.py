"""What a device must be for a release to go there: RELEASE.toml's `[requires]` table.

It travels inside the release's signed custom metadata (agent/wire/release.py), so an
agent evaluates exactly what the release key signed, and the hub's readiness prediction
(hub/readiness/) evaluates the same fields against inventories with the same pure
function (agent/readiness.py).

    [requires]
    os = { id = "debian", version = ">= 12, << 13" }
    architectures = ["amd64", "arm64"]     # Debian names; x86_64, aarch64 also accepted
    min_ram = "2 GiB"                      # bytes, or a number with B/KiB/MiB/GiB/TiB
    min_free_disk = "500 MiB"              # on the install prefix's filesystem
    kernel = ">= 6.1"
    [[requires.packages]]
    name = "libssl3"
    version = ">= 3.0.11-1~deb12u2"        # present, in this range
    [[requires.packages]]
    name = "legacy-agent"
    absent = true                          # not installed (in `version`'s range, if given)

A version range is one or more comma-separated `OP VERSION` clauses, all of which must
hold; OP is Debian's (`>=`, `<=`, `>>`, `<<`, `=`) or the familiar `>`, `<`, `==`, `!=`.
Versions compare with dpkg's ordering (python-debian): epochs, `~` before everything,
`+debNuM`; the OS version (VERSION_ID) and the kernel release compare the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pydantic import Field, field_validator, model_validator

from agent.wire.validation import StrictModel

_OPERATORS = {">=": ">=", "<=": "<=", ">>": ">", "<<": "<", ">": ">", "<": "<",
              "=": "=", "==": "=", "!=": "!="}
_CLAUSE = re.compile(r"^\s*(>=|<=|>>|<<|==|!=|>|<|=)\s*(\S+)\s*$")
_VERSION = re.compile(r"^(\d+:)?[0-9][A-Za-z0-9.+~:-]*$")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KiB|MiB|GiB|TiB)?\s*$")
_UNITS = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}

ARCH_ALIASES = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "armhf", "armv6l": "armel",
                "i686": "i386", "i586": "i386", "ppc64le": "ppc64el", "mips64": "mips64el"}
"""uname's machine names -> Debian's architecture names (inventories carry uname's)."""


@lru_cache(maxsize=4096)
def debian_version(text: str) -> Any:
    """python-debian's Version (dpkg's ordering); ValueError for text that is none.
    Imported here, not at module level: an agent whose releases name no version range
    never loads it."""
    from debian.debian_support import Version

    return Version(text)


def debian_arch(name: str) -> str:
    return ARCH_ALIASES.get(name, name)


@dataclass(frozen=True)
class Clause:
    operator: str
    """One of >=, <=, >, <, =, !="""
    version: str

    def __str__(self) -> str:
        return f"{self.operator} {self.version}"


def parse_range(text: str) -> tuple[Clause, ...]:
    """`>= 1:2.0-1, << 3` -> clauses; ValueError naming the bad clause."""
    clauses = []
    for part in text.split(","):
        found = _CLAUSE.match(part)
        if not found:
            raise ValueError(f"{part.strip()!r} is not OP VERSION (OP one of >=, <=, >>, <<, "
                             f"=, >, <, !=), in version range {text!r}")
        operator, version = found.groups()
        if not _VERSION.match(version):
            raise ValueError(f"{version!r} is not a Debian version, in version range {text!r}")
        try:
            debian_version(version)
        except ValueError:
            raise ValueError(f"{version!r} is not a Debian version, in version range "
                             f"{text!r}") from None
        clauses.append(Clause(_OPERATORS[operator], version))
    return tuple(clauses)


def _range(value: str) -> str:
    value = value.strip()
    if value:
        parse_range(value)
    return value


def _size(value: Any) -> Any:
    if isinstance(value, str):
        found = _SIZE.match(value)
        if not found:
            raise ValueError(f"{value!r} is not a size (bytes, or e.g. \"2 GiB\", \"500 MiB\")")
        return int(float(found.group(1)) * _UNITS[found.group(2) or "B"])
    return value


class OsRequirement(StrictModel):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$", description="os-release ID")
    version: str = Field(default="", max_length=200,
                         description="range of os-release VERSION_ID, e.g. >= 12, << 13")

    @field_validator("version")
    @classmethod
    def _version_range(cls, value: str) -> str:
        return _range(value)


class PackageRequirement(StrictModel):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9+.-]{0,127}$")
    version: str = Field(default="", max_length=200, description="Debian version range")
    absent: bool = Field(default=False, description="must not be installed (in `version`)")

    @field_validator("version")
    @classmethod
    def _version_range(cls, value: str) -> str:
        return _range(value)


class Requirements(StrictModel):
    os: OsRequirement | None = None
    architectures: list[str] = Field(default_factory=list, max_length=32)
    min_ram: int = Field(default=0, ge=0, lt=2**62, description="bytes of RAM (total)")
    min_free_disk: int = Field(default=0, ge=0, lt=2**62,
                               description="bytes free on the install prefix's filesystem")
    kernel: str = Field(default="", max_length=200, description="range of `uname -r`")
    packages: list[PackageRequirement] = Field(default_factory=list, max_length=128)

    @field_validator("min_ram", "min_free_disk", mode="before")
    @classmethod
    def _sizes(cls, value: Any) -> Any:
        return _size(value)

    @field_validator("architectures")
    @classmethod
    def _architectures(cls, value: list[str]) -> list[str]:
        for index, name in enumerate(value):
            if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,31}", name):
                raise ValueError(f"architectures[{index}]: {name!r} is not an architecture "
                                 "name (amd64, arm64, ...)")
        return value

    @field_validator("kernel")
    @classmethod
    def _kernel_range(cls, value: str) -> str:
        return _range(value)

    @model_validator(mode="after")
    def _one_entry_per_package(self) -> Requirements:
        seen: set[str] = set()
        for index, package in enumerate(self.packages):
            if package.name in seen:
                raise ValueError(f"packages[{index}]: {package.name!r} is named twice; "
                                 "put both clauses in one version range")
            seen.add(package.name)
        return self

    def is_empty(self) -> bool:
        return self == Requirements()
