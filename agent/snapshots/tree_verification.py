"""Check, after a restore, that the disk is what a file-tree snapshot recorded.

A revert is only trusted once verified. The release's own health checks describe the
new version, so they cannot judge the old one; a release may ship `revert_health`
checks for that, and without them this check is what "verified" means: every recorded
path has its recorded type, mode, owner, mtime, size and link target, recorded-absent
paths are absent, a fully recorded directory holds nothing unrecorded, hard links are
linked again, and every file restore had to rewrite has the stored content byte for
byte (files restore left alone are unchanged since the snapshot by construction: same
inode and ctime).
"""

from __future__ import annotations

import filecmp
import os
import stat
from pathlib import Path

from agent.errors import SnapshotError
from agent.snapshots.manifest import SnapshotEntry, SnapshotManifest

_KIND = {"file": stat.S_ISREG, "dir": stat.S_ISDIR, "symlink": stat.S_ISLNK}


def verify_restored(manifest: SnapshotManifest) -> str:
    recorded = {entry.path for entry in manifest.entries}
    blobs = Path(manifest.store) / "blobs"
    compared = 0
    for entry in manifest.entries:
        compared += _verify_entry(entry, recorded, blobs)
    return (
        f"restored tree matches the snapshot: {len(manifest.entries)} paths, "
        f"{compared} rewritten file(s) compared byte for byte"
    )


def _verify_entry(entry: SnapshotEntry, recorded: set[str], blobs: Path) -> int:
    path = entry.path
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        if entry.kind == "absent":
            return 0
        raise SnapshotError(f"revert check: {path} is missing") from None
    if entry.kind == "absent":
        raise SnapshotError(f"revert check: {path} exists but did not before the install")
    check = _KIND.get(entry.kind)
    if check is not None and not check(st.st_mode):
        raise SnapshotError(f"revert check: {path} is not a {entry.kind} any more")
    differs = _metadata_difference(entry, st)
    if differs:
        raise SnapshotError(f"revert check: {path}: {differs}")
    if entry.kind == "dir" and entry.scope == "tree":
        extra = sorted(name for name in os.listdir(path) if f"{path}/{name}" not in recorded
                       and os.path.join(path, name) not in recorded)
        if extra:
            raise SnapshotError(f"revert check: {path} holds {extra[0]!r}, added by the install")
    if entry.kind == "symlink" and os.readlink(path) != entry.target:
        raise SnapshotError(f"revert check: {path} points to {os.readlink(path)!r}")
    if entry.kind != "file":
        return 0
    if entry.link_to is not None:
        if not os.path.samestat(st, os.lstat(entry.link_to)):
            raise SnapshotError(f"revert check: {path} is no longer a hard link of {entry.link_to}")
        return 0
    if entry.identity == (st.st_dev, st.st_ino, st.st_ctime_ns) or entry.blob is None:
        return 0
    if not filecmp.cmp(path, blobs / entry.blob, shallow=False):
        raise SnapshotError(f"revert check: {path} differs from its snapshot")
    return 1


def _metadata_difference(entry: SnapshotEntry, st: os.stat_result) -> str:
    if entry.kind != "symlink" and stat.S_IMODE(st.st_mode) != stat.S_IMODE(entry.mode):
        return f"mode {stat.S_IMODE(st.st_mode):o}, was {stat.S_IMODE(entry.mode):o}"
    if (st.st_uid, st.st_gid) != (entry.uid, entry.gid):
        return f"owner {st.st_uid}:{st.st_gid}, was {entry.uid}:{entry.gid}"
    if st.st_mtime_ns != entry.mtime_ns:
        return "modification time differs"
    if entry.kind == "file" and st.st_size != entry.size:
        return f"size {st.st_size}, was {entry.size}"
    return ""
