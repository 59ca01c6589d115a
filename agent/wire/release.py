"""A release as an admin writes it (RELEASE.toml) and as the agent reads it back from the
custom fields of its signed TUF target.

Everything an endpoint will do with a payload is here and is covered by the release
key's signature: how to install it, what to check afterwards. Paths in install specs and
health checks are absolute paths on the endpoint; an agent configured with an install
prefix (tests, the demo, containers) places them under that prefix.
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version
from pydantic import (
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from agent.errors import WireFormatError
from agent.wire.decoding import decode_toml
from agent.wire.requirements import Requirements
from agent.wire.validation import NAME_PATTERN, StrictModel, parse_model

CUSTOM_KEY = "meisitong"
"""Key under which a TUF target's `custom` carries the release fields."""


class Severity(StrEnum):
    CRITICAL = "critical"
    IMPORTANT = "important"
    MODERATE = "moderate"
    LOW = "low"


def _absolute(path: str, key: str) -> str:
    if not path.startswith("/"):
        raise ValueError(f"{key} must be an absolute path, got {path!r}")
    if any(part == ".." for part in path.split("/")):
        raise ValueError(f"{key} must not contain '..', got {path!r}")
    return path


class _Retrying(StrictModel):
    timeout: float = Field(default=10.0, gt=0, le=3600, description="seconds per attempt")
    retries: int = Field(default=3, ge=0, le=100, description="attempts after the first")
    interval: float = Field(default=2.0, ge=0, le=3600, description="seconds between attempts")


class CommandHealthCheck(_Retrying):
    """Passes when the command exits 0. `{root}` in argv becomes the install prefix."""

    type: Literal["command"]
    argv: list[str] = Field(min_length=1)


class TcpHealthCheck(_Retrying):
    """Passes when a TCP connection to host:port succeeds."""

    type: Literal["tcp"]
    host: str = "127.0.0.1"
    port: int = Field(ge=1, le=65535)


class ProcessHealthCheck(_Retrying):
    """Passes when a process with this name (psutil's `name()`) is running."""

    type: Literal["process"]
    name: str = Field(min_length=1)


class HttpHealthCheck(_Retrying):
    """Passes when GET url answers with `status`."""

    type: Literal["http"]
    url: str = Field(pattern=r"^https?://")
    status: int = Field(default=200, ge=100, le=599)


class FileHashHealthCheck(_Retrying):
    """Passes when the file at `path` (under the install prefix) has this SHA-256."""

    type: Literal["file-hash"]
    path: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")

    @field_validator("path")
    @classmethod
    def _path_is_absolute(cls, value: str) -> str:
        return _absolute(value, "path")


DEFAULT_CONTROL_INTERVAL = 3600


class SignalsSpec(StrictModel):
    """`[signals]`: which of the device's units and processes are this release's, for
    the health signals measured before and after the install (agent/health_signals.py).
    Without it a release gets no signals measured and installs without waiting."""

    units: list[str] = Field(default_factory=list, max_length=32)
    """systemd units (`app.service`): their NRestarts, and their cgroups' processes."""
    processes: list[str] = Field(default_factory=list, max_length=32)
    """Process names (psutil's `name()`), for CPU and memory when there are no units."""
    window_seconds: int = Field(default=300, ge=1, le=3600)
    """How long each window lasts: the install waits this long first, the result this
    long after the health checks pass."""
    control_interval: int = Field(default=DEFAULT_CONTROL_INTERVAL, ge=60, le=86400)
    """Seconds between control windows: while the rollout is active, a device of its
    audience not in the current stage measures one window (`window_seconds` long) each
    interval, for the hub's concurrent control (agent/wire/control_signals.py). Left out
    of the signed release when it is the default, so agents that know `[signals]` but
    not this key still read such a release."""

    @model_serializer(mode="wrap")
    def _without_default_interval(self, handler: SerializerFunctionWrapHandler
                                  ) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if data.get("control_interval") == DEFAULT_CONTROL_INTERVAL:
            data.pop("control_interval")
        return data

    @field_validator("units")
    @classmethod
    def _unit_names(cls, units: list[str]) -> list[str]:
        for unit in units:
            if not re.fullmatch(r"[A-Za-z0-9:_.@\\-]{1,200}\.(service|scope|slice)", unit):
                raise ValueError(f"{unit!r} is not a systemd service, scope or slice name")
        return units


HealthCheck = Annotated[
    CommandHealthCheck
    | TcpHealthCheck
    | ProcessHealthCheck
    | HttpHealthCheck
    | FileHashHealthCheck,
    Field(discriminator="type"),
]


class FileTreeInstall(StrictModel):
    """The payload is a tar archive extracted into `root`, replacing the files it holds.

    `mode = "replace"` makes the payload the whole new tree (a major upgrade): whatever
    the archive does not hold disappears from `root`, except the `preserve` paths
    (relative to root: configs, user profiles), which are carried over from the old tree.
    """

    type: Literal["file-tree"]
    root: str
    mode: Literal["overlay", "replace"] = "overlay"
    preserve: list[str] = Field(default_factory=list)

    @field_validator("root")
    @classmethod
    def _root_is_absolute(cls, value: str) -> str:
        return _absolute(value, "root")

    @field_validator("preserve")
    @classmethod
    def _preserve_relative(cls, value: list[str]) -> list[str]:
        for path in value:
            parts = [part for part in path.split("/") if part not in ("", ".")]
            if path.startswith("/") or ".." in parts or not parts:
                raise ValueError(f"preserve[] must be a path inside root, got {path!r}")
        return value


class DpkgInstall(StrictModel):
    """The payload is one Debian package (.deb) of `package`, installed with dpkg.

    Revert reinstalls the version that was installed before (the agent keeps that
    .deb), or purges the package if there was none.
    """

    type: Literal["dpkg"]
    package: str = Field(pattern=r"^[a-z0-9][a-z0-9+.-]+$")
    timeout: float = Field(default=600.0, gt=0, le=86400)


class CommandPairInstall(StrictModel):
    """The payload is a tar archive holding an install and a rollback program.

    `paths` lists what the install changes: those are snapshotted before it runs and
    restored after the rollback program, so a revert is exact even if rollback is sloppy.
    """

    type: Literal["command-pair"]
    install: str = Field(min_length=1, description="program inside the payload")
    rollback: str = Field(min_length=1, description="program inside the payload")
    paths: list[str] = Field(default_factory=list)
    timeout: float = Field(default=600.0, gt=0, le=86400)

    @field_validator("install", "rollback")
    @classmethod
    def _relative_member(cls, value: str) -> str:
        if value.startswith("/") or ".." in value.split("/"):
            raise ValueError(f"must be a relative path inside the payload, got {value!r}")
        return value

    @field_validator("paths")
    @classmethod
    def _paths_absolute(cls, value: list[str]) -> list[str]:
        return [_absolute(path, "paths[]") for path in value]


InstallSpec = Annotated[
    FileTreeInstall | CommandPairInstall | DpkgInstall, Field(discriminator="type")
]


class ReleaseManifest(StrictModel):
    """RELEASE.toml: what an admin writes next to a payload before `publish`."""

    name: str = Field(pattern=NAME_PATTERN)
    version: str
    severity: Severity
    category: str = Field(pattern=NAME_PATTERN)
    description: str = ""
    rollback: bool = Field(
        default=False, description="a rollback release may replace the newer versions it "
        "names in `replaces`"
    )
    replaces: list[str] = Field(
        default_factory=list,
        description="rollback releases only: the installed versions this release may take "
        "a device back from, each a PEP 440 version (2.0.0) or specifier set (>=2.0,<2.1)",
    )
    reboot: bool = Field(default=False, description="the install needs a reboot")
    install: InstallSpec
    health: list[HealthCheck] = Field(default_factory=list)
    revert_health: list[HealthCheck] = Field(
        default_factory=list,
        description="checks of the restored old version after a revert; without them the "
        "agent verifies the restored paths against the snapshot",
    )
    requires: Requirements | None = Field(
        default=None, description="what a device must be before it downloads the release "
        "(agent/wire/requirements.py); unmet, it reports not-ready and changes nothing",
    )
    signals: SignalsSpec | None = None

    @field_validator("version")
    @classmethod
    def _pep440_version(cls, value: str) -> str:
        try:
            Version(value)
        except InvalidVersion:
            raise ValueError(f"not a valid version: {value!r} (use e.g. 1.2.3)") from None
        return value

    @field_validator("replaces")
    @classmethod
    def _versions_or_specifiers(cls, value: list[str]) -> list[str]:
        for index, item in enumerate(value):
            try:
                _version_matcher(item)
            except ValueError as exc:
                raise ValueError(f"replaces[{index}]: {exc}") from None
        return value

    @model_validator(mode="after")
    def _rollback_names_what_it_replaces(self) -> ReleaseManifest:
        if self.rollback and not self.replaces:
            raise ValueError(
                "rollback = true needs `replaces`: the newer versions this release may take "
                'a device back from (e.g. replaces = ["2.0.0"]); a rollback release that '
                "names none could take a device back from any later version"
            )
        if self.replaces and not self.rollback:
            raise ValueError("replaces is only for rollback releases: set rollback = true")
        for item in self.replaces:
            matcher = _version_matcher(item)
            if isinstance(matcher, Version) and matcher <= self.parsed_version:
                raise ValueError(
                    f"replaces {item!r} is not newer than this release ({self.version}): "
                    "a rollback release replaces later versions only"
                )
        return self

    @property
    def parsed_version(self) -> Version:
        return Version(self.version)

    def refuses_to_replace(self, installed: str | None) -> str | None:
        """Why this release must not be installed over the installed `installed` version
        of its name, or None if it may be.

        Asked when a deployment is created and again before every step up to installing
        (and after a crash): what is installed can change meanwhile — a critical release
        installs while this one waits for its window — and an older version must never
        land on a newer one. The same version is refused too (nothing to do). Only a
        rollback release goes back, and only from a version it names in `replaces`: the
        admin signed that list with it, so an old rollback release cannot take a device
        back from a later version it never heard of."""
        if installed is None:
            return None
        current = Version(installed)
        if current == self.parsed_version:
            return f"version {installed} is already installed"
        if current < self.parsed_version:
            return None
        if not self.rollback:
            return (f"downgrade from the installed {installed} to {self.version} refused "
                    "(not a rollback release)")
        if any(_replaces(item, current) for item in self.replaces):
            return None
        return (f"rollback release {self.version} may replace only {', '.join(self.replaces)}, "
                f"not the installed {installed}")

    @classmethod
    def from_toml_file(cls, path: Path) -> ReleaseManifest:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise WireFormatError(f"{path}: cannot read: {exc.strerror}") from None
        except UnicodeDecodeError as exc:
            raise WireFormatError(f"{path}: not UTF-8: {exc}") from None
        data = decode_toml(text, str(path))
        return parse_model(cls, data, str(path))


def _version_matcher(item: str) -> Version | SpecifierSet:
    """A plain PEP 440 version, or a specifier set such as `>=2.0,<2.1`."""
    text = item.strip()
    if text and text[0].isdigit():
        try:
            return Version(text)
        except InvalidVersion:
            raise ValueError(f"not a valid version: {item!r} (use e.g. 2.0.0)") from None
    try:
        specifiers = SpecifierSet(text)
    except InvalidSpecifier:
        raise ValueError(
            f"not a version or version specifier: {item!r} (use e.g. 2.0.0 or >=2.0,<2.1)"
        ) from None
    if not specifiers:
        raise ValueError("an empty specifier would match every version")
    return specifiers


def _replaces(item: str, installed: Version) -> bool:
    matcher = _version_matcher(item)
    if isinstance(matcher, Version):
        return matcher == installed
    return matcher.contains(installed, prereleases=True)


class TorrentRef(StrictModel):
    """Where the payload's .torrent is (itself a signed target) and its info-hashes."""

    path: str
    info_hash_v1: str = Field(pattern=r"^[0-9a-f]{40}$")
    info_hash_v2: str = Field(pattern=r"^[0-9a-f]{64}$")


class ReleaseInfo(StrictModel):
    """The custom fields of a signed release target, under `custom["meisitong"]`."""

    manifest: ReleaseManifest
    payload_name: str = Field(min_length=1)
    torrent: TorrentRef
    published_at: str

    def to_custom(self) -> dict[str, object]:
        return {CUSTOM_KEY: _without_floats(self.model_dump(mode="json"))}

    @classmethod
    def from_custom(cls, custom: object, target_path: str) -> ReleaseInfo:
        if not isinstance(custom, dict) or CUSTOM_KEY not in custom:
            raise WireFormatError(f"target {target_path}: no '{CUSTOM_KEY}' custom fields")
        return parse_model(cls, custom[CUSTOM_KEY], f"target {target_path}")


def _without_floats(value: object) -> object:
    """TUF signs canonical JSON, which has no floats: seconds like 0.5 travel as the
    decimal string "0.5", which validation turns back into a float on the endpoint."""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dict):
        return {key: _without_floats(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_without_floats(item) for item in value]
    return value


def release_target_path(name: str, version: str, payload_name: str) -> str:
    """`releases/NAME/VERSION/FILE`: the admin-signed payload target."""
    return f"releases/{name}/{version}/{payload_name}"
