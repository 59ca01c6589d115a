"""What a snapshot recorded, as a journal-able record.

The lifecycle journals the manifest before installing, so after a crash (or a kill -9)
the next agent process can restore from it; it is therefore plain JSON, validated on
the way back in like every other record crossing a boundary.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationError

from agent.errors import SnapshotError
from agent.snapshots.file_copy import CopyMethod
from agent.wire.validation import StrictModel, describe_validation_error

EntryKind = Literal["file", "dir", "symlink", "special", "absent"]


class SnapshotEntry(StrictModel):
    """One path as it was. Paths are absolute on this machine (prefix already applied).

    `scope` "tree" means the path is fully owned by the snapshot: for a directory,
    anything found beneath it at restore that was not recorded is removed. "metadata"
    (the parent directory of a snapshotted path) restores only the entry itself.
    """

    path: str
    kind: EntryKind
    scope: Literal["tree", "metadata"] = "tree"
    mode: int = 0
    uid: int = 0
    gid: int = 0
    atime_ns: int = 0
    mtime_ns: int = 0
    size: int = 0
    rdev: int = 0
    target: str | None = Field(default=None, description="symlink target")
    blob: str | None = Field(default=None, description="file holding the content, in the store")
    link_to: str | None = Field(default=None, description="an earlier entry: same inode")
    identity: tuple[int, int, int] | None = Field(
        default=None,
        description="(st_dev, st_ino, st_ctime_ns) when taken: equal at restore = untouched",
    )


class SnapshotManifest(StrictModel):
    """Everything needed to put the recorded paths back, and to delete the store."""

    format: Literal[1] = 1
    backend: str
    store: str
    paths: list[str] = Field(description="the paths that were asked for")
    copy_method: CopyMethod
    entries: list[SnapshotEntry]
    parent_realpaths: dict[str, str] = Field(
        default_factory=dict,
        description="where each snapshotted path's parent resolved to; checked at restore",
    )

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, text: str | bytes) -> SnapshotManifest:
        try:
            return cls.model_validate_json(text)
        except ValidationError as exc:
            raise SnapshotError(describe_validation_error(exc, "snapshot manifest")) from None

    @property
    def file_count(self) -> int:
        return sum(1 for entry in self.entries if entry.kind == "file")

    @property
    def stored_bytes(self) -> int:
        return sum(entry.size for entry in self.entries if entry.blob is not None)
