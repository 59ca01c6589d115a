"""A release as an admin writes it (RELEASE.toml) and as the agent reads it back from the
custom fields of its signed TUF target.

Everything an endpoint will do with a payload is here and is covered by the release
key's signature: how to install it, what to check afterwards. Paths in install specs and
health checks are absolute paths on the endpoint; an agent configured with an install
prefix (tests, the demo, containers) places them under that prefix.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

from packaging.version import InvalidVersion, Version
from pydantic import Field, field_validator

from agent.errors import WireFormatError
from agent.wire.decoding import decode_toml
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
        default=False, description="a rollback release may replace a newer version"
    )
    reboot: bool = Field(default=False, description="the install needs a reboot")
    install: InstallSpec
    health: list[HealthCheck] = Field(default_factory=list)
    revert_health: list[HealthCheck] = Field(
        default_factory=list,
        description="checks of the restored old version after a revert; without them the "
        "agent verifies the restored paths against the snapshot",
    )

    @field_validator("version")
    @classmethod
    def _pep440_version(cls, value: str) -> str:
        try:
            Version(value)
        except InvalidVersion:
            raise ValueError(f"not a valid version: {value!r} (use e.g. 1.2.3)") from None
        return value

    @property
    def parsed_version(self) -> Version:
        return Version(self.version)

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
