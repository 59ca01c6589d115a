"""The consistent-snapshot layout of the hub's TUF metadata, and signing one role.

Kept apart from `tuf_repository` so the rules of *where* each file lives and *how* one
role is signed read in one place: the repository module composes them into operations.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from securesystemslib.signer import Signer
from tuf.api.exceptions import UnsignedMetadataError
from tuf.api.metadata import Metadata, Root, Signed, Snapshot, Targets, Timestamp
from tuf.api.serialization import DeserializationError, SerializationError
from tuf.api.serialization.json import JSONSerializer

from hub.errors import HubNotInitializedError, RepositoryError

ROLLOUT_ROLE = "rollout"

_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+~-]*$")
"""A target path segment: no empty, dot-only, hidden or shell-hostile components."""


@dataclass
class RepositoryState:
    """The current signed metadata of every role, as referenced from timestamp.json."""

    root: Metadata[Root]
    targets: Metadata[Targets]
    rollout: Metadata[Targets]
    snapshot: Metadata[Snapshot]
    timestamp: Metadata[Timestamp]


def metadata_file_name(role: str, version: int) -> str:
    """`N.ROLE.json`, the consistent-snapshot name ngclient asks for."""
    return f"{version}.{role}.json"


def consistent_target_name(target_path: str, sha256: str) -> str:
    """`DIR/SHA256.NAME`: where ngclient's download_target looks for a target file."""
    dirname, sep, basename = target_path.rpartition("/")
    return f"{dirname}{sep}{sha256}.{basename}"


def validate_target_path(target_path: str) -> None:
    """Target paths become URLs and file names: relative, no `..`, no empty segments."""
    segments = target_path.split("/")
    if not target_path or not all(_SEGMENT.match(segment) for segment in segments):
        raise RepositoryError(
            f"invalid target path {target_path!r}: use relative segments of letters, "
            "digits and ._+~- (no '..', no empty or hidden segments)"
        )


def serialize(md: Metadata[Any]) -> bytes:
    """Indented JSON: metadata is small and admins read it; signatures cover the
    canonical form, not these bytes."""
    try:
        return md.to_bytes(JSONSerializer(compact=False))
    except SerializationError as exc:
        raise RepositoryError(f"cannot serialize {md.signed.type} metadata: {exc}") from exc


def sign(md: Metadata[Any], signer: Signer, expires: datetime) -> None:
    """Set `expires` and replace the signatures with `signer`'s."""
    md.signed.expires = expires
    try:
        md.sign(signer)
    except UnsignedMetadataError as exc:
        raise RepositoryError(f"signing {md.signed.type} metadata failed: {exc}") from exc


def _load(path: Path, expected: type[Signed]) -> Metadata[Any]:
    try:
        md: Metadata[Any] = Metadata.from_bytes(path.read_bytes())
    except FileNotFoundError:
        raise RepositoryError(f"{path} is missing: the repository is inconsistent") from None
    except OSError as exc:
        raise RepositoryError(f"cannot read {path}: {exc.strerror}") from None
    except DeserializationError as exc:
        raise RepositoryError(f"{path} is not valid TUF metadata: {exc}") from exc
    if not isinstance(md.signed, expected):
        raise RepositoryError(f"{path} holds {md.signed.type} metadata, not {expected.type}")
    return md


def load_state(metadata_dir: Path) -> RepositoryState:
    """Follow timestamp → snapshot → targets/rollout, as a client would (without
    verifying: this is the hub's own disk)."""
    root_path = metadata_dir / "root.json"
    if not root_path.exists():
        raise HubNotInitializedError(f"no TUF repository in {metadata_dir} (no root.json)")
    timestamp = _load(metadata_dir / "timestamp.json", Timestamp)
    snapshot = _load(
        metadata_dir / metadata_file_name("snapshot", timestamp.signed.snapshot_meta.version),
        Snapshot,
    )
    versions = {}
    for role in ("targets", ROLLOUT_ROLE):
        meta = snapshot.signed.meta.get(f"{role}.json")
        if meta is None:
            raise RepositoryError(f"snapshot v{snapshot.signed.version} does not list {role}")
        versions[role] = meta.version
    return RepositoryState(
        root=_load(root_path, Root),
        targets=_load(metadata_dir / metadata_file_name("targets", versions["targets"]), Targets),
        rollout=_load(
            metadata_dir / metadata_file_name(ROLLOUT_ROLE, versions[ROLLOUT_ROLE]), Targets
        ),
        snapshot=snapshot,
        timestamp=timestamp,
    )
