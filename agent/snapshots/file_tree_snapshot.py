"""The default snapshot: copy what an install may change, put it back exactly on revert.

Works on any filesystem; on one with reflinks (btrfs, XFS) the copies share extents and
cost almost nothing.

What take records, for each path asked for:
- a path that exists is recorded with everything beneath it (directories walked, symlinks
  recorded as links, never followed); hard links inside the snapshot stay hard links;
- a path that does not exist is recorded as absent, and so is its highest missing
  ancestor: an install that creates `/opt/app/bin/x` where `/opt/app` did not exist
  also created `/opt/app`, and restore removes it;
- the parent directory of each recorded path gets its own mode, owner and times
  recorded (not its other children), because creating or deleting an entry changes them;
- a symlink asked for that points to a directory: the directory tree is recorded as well.

What restore guarantees: every recorded path is back with its type, content, mode,
owner, mtime and symlink target; whatever the install added beneath a recorded directory
or at a recorded-absent path is gone. A file whose inode and ctime are unchanged since
take (nothing wrote to it) is left alone, so restore costs what the install changed.
Each step checks the disk before acting, so a second run (or one after a crash half way)
ends in the same tree. Restore refuses to run when a recorded path's parent now resolves
somewhere else (an install that swapped `/opt` for a symlink): writing through it would
change files that were never recorded.

Assumed: nothing else writes to the recorded paths while take runs.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import stat
from pathlib import Path
from typing import Any

from agent.atomic_file import write_atomic
from agent.errors import SnapshotError
from agent.snapshots.backend import SnapshotBackend
from agent.snapshots.file_copy import FileCopier, sync_filesystem
from agent.snapshots.manifest import SnapshotEntry, SnapshotManifest
from agent.snapshots.tree_verification import verify_restored

logger = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"


class FileTreeSnapshot(SnapshotBackend):
    """Snapshot by copying (or cloning) files into a store directory."""

    name = "file-tree"

    def _take(self, paths: list[Path], store: Path) -> SnapshotManifest:
        tops = _top_paths(paths)
        for top in tops:
            if store == top or top in store.parents or store in top.parents:
                raise SnapshotError(f"snapshot store {store} overlaps snapshotted path {top}")
        if store.exists() and any(store.iterdir()):
            raise SnapshotError(f"snapshot store {store} already holds something")
        blobs = store / "blobs"
        blobs.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(store, 0o700)
        walker = _Walker(blobs, FileCopier())
        parent_realpaths: dict[str, str] = {}
        for top in tops:
            if top.parent != top:
                parent_realpaths[str(top.parent)] = os.path.realpath(top.parent)
                # The directory that really changes when an entry is added to the parent.
                real_parent = Path(parent_realpaths[str(top.parent)])
                if str(real_parent) not in walker.entries:
                    walker.record(real_parent, scope="metadata")
            walker.walk(top)
        manifest = SnapshotManifest(
            backend=self.name,
            store=str(store),
            paths=[str(path) for path in paths],
            copy_method=walker.copier.method,
            entries=list(walker.entries.values()),
            parent_realpaths=parent_realpaths,
        )
        sync_filesystem(blobs)
        write_atomic(store / MANIFEST_NAME, manifest.to_json().encode(), mode=0o600)
        return manifest

    def _restore(self, manifest: SnapshotManifest) -> None:
        for parent, realpath in manifest.parent_realpaths.items():
            now = os.path.realpath(parent)
            if now != realpath:
                raise SnapshotError(
                    f"refusing to restore: {parent} now resolves to {now}, was {realpath}"
                )
        entries = sorted(manifest.entries, key=lambda entry: Path(entry.path).parts)
        recorded = {entry.path for entry in entries}
        restorer = _Restorer(Path(manifest.store) / "blobs", FileCopier())
        # What the install added goes first: on a full disk, restoring a file needs room
        # (a temporary copy) that only removing the additions gives back.
        for entry in entries:
            if entry.kind == "absent":
                restorer.restore_entry(entry, recorded)
        for entry in entries:
            restorer.restore_entry(entry, recorded)
        for entry in reversed(entries):  # deepest first: children change a dir's mtime
            if entry.kind == "dir":
                _apply_metadata(Path(entry.path), entry)
        devices: dict[int, Path] = {}
        for entry in entries:
            path = Path(entry.path)
            if entry.kind == "dir" and path.is_dir():
                devices.setdefault(os.lstat(path).st_dev, path)
        for path in devices.values():
            sync_filesystem(path)

    def _discard(self, manifest: SnapshotManifest) -> None:
        if os.path.lexists(manifest.store):
            shutil.rmtree(manifest.store)

    def _verify(self, manifest: SnapshotManifest) -> str:
        return verify_restored(manifest)


def load_manifest(store: Path) -> SnapshotManifest:
    """The manifest `take` left in `store` (the journal keeps its own copy too)."""
    try:
        text = (Path(store) / MANIFEST_NAME).read_bytes()
    except OSError as exc:
        raise SnapshotError(f"cannot read snapshot manifest in {store}: {exc.strerror}") from None
    return SnapshotManifest.from_json(text)


def _top_paths(paths: list[Path]) -> list[Path]:
    """The roots to walk: absent paths climbed to their highest missing ancestor,
    directory symlinks joined by their targets, nested roots dropped."""
    tops: set[Path] = set()
    for path in paths:
        while not os.path.lexists(path) and not os.path.lexists(path.parent):
            if path.parent == path:
                break
            path = path.parent
        tops.add(path)
        if path.is_symlink() and path.is_dir():
            tops.add(Path(os.path.realpath(path)))
    ordered = sorted(tops, key=lambda top: top.parts)
    kept: list[Path] = []
    for top in ordered:
        if not any(outer in top.parents for outer in kept):
            kept.append(top)
    return kept


class _Walker:
    def __init__(self, blobs: Path, copier: FileCopier) -> None:
        self.blobs = blobs
        self.copier = copier
        # By path, in the order taken; a tree entry replaces a metadata one for the same path.
        self.entries: dict[str, SnapshotEntry] = {}
        self._inodes: dict[tuple[int, int], str] = {}

    def walk(self, top: Path) -> None:
        pending = [top]
        while pending:
            path = pending.pop()
            if self.record(path, scope="tree") == "dir":
                with os.scandir(path) as children:
                    names = sorted(child.name for child in children)
                pending.extend(path / name for name in reversed(names))

    def record(self, path: Path, scope: str) -> str:
        try:
            st = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            self._add(SnapshotEntry(path=str(path), kind="absent"))
            return "absent"
        common: dict[str, Any] = {
            "path": str(path), "scope": scope, "mode": st.st_mode, "uid": st.st_uid,
            "gid": st.st_gid, "atime_ns": st.st_atime_ns, "mtime_ns": st.st_mtime_ns,
        }
        if stat.S_ISDIR(st.st_mode):
            self._add(SnapshotEntry(kind="dir", **common))
            return "dir"
        if scope == "metadata":
            raise SnapshotError(f"{path} is the parent of a snapshotted path but not a directory")
        if stat.S_ISLNK(st.st_mode):
            entry = SnapshotEntry(kind="symlink", target=os.readlink(path), **common)
        elif stat.S_ISREG(st.st_mode):
            entry = self._file_entry(path, st, common)
        else:
            entry = SnapshotEntry(kind="special", rdev=st.st_rdev, **common)
        self._add(entry)
        return entry.kind

    def _file_entry(self, path: Path, st: os.stat_result, common: dict[str, Any]) -> SnapshotEntry:
        inode = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and inode in self._inodes:
            return SnapshotEntry(
                kind="file", size=st.st_size, link_to=self._inodes[inode], **common
            )
        self._inodes[inode] = str(path)
        blob = f"{len(self.entries):08d}"
        self.copier.copy(path, self.blobs / blob)
        return SnapshotEntry(
            kind="file", size=st.st_size, blob=blob,
            identity=_identity(st), **common,
        )

    def _add(self, entry: SnapshotEntry) -> None:
        self.entries[entry.path] = entry


class _Restorer:
    def __init__(self, blobs: Path, copier: FileCopier) -> None:
        self.blobs = blobs
        self.copier = copier

    def restore_entry(self, entry: SnapshotEntry, recorded: set[str]) -> None:
        path = Path(entry.path)
        temp = _temp_path(path)
        if entry.kind in ("file", "symlink") and os.path.lexists(temp):
            os.unlink(temp)  # left by a restore that crashed
        current = _lstat(path)
        if entry.kind == "absent":
            if current is not None:
                _remove(path, current)
            return
        if current is not None and not _same_kind(entry, current):
            _remove(path, current)
            current = None
        if entry.kind == "dir":
            if current is None:
                os.mkdir(path, 0o700)
            if entry.scope == "tree":
                self._prune(path, recorded)
            return  # metadata once the children are done
        if entry.kind == "file":
            self._restore_file(entry, path, temp, current)
        elif entry.kind == "symlink":
            if current is None or os.readlink(path) != entry.target:
                os.symlink(entry.target or "", temp)
                os.replace(temp, path)
        elif current is None:
            os.mknod(path, entry.mode, entry.rdev)
        _apply_metadata(path, entry)

    def _restore_file(
        self, entry: SnapshotEntry, path: Path, temp: Path, current: os.stat_result | None
    ) -> None:
        if entry.link_to is not None:
            source = os.lstat(entry.link_to)
            if current is None or not os.path.samestat(current, source):
                os.link(entry.link_to, temp)
                os.replace(temp, path)
            return
        if current is not None and entry.identity == _identity(current):
            return  # untouched since the snapshot
        if entry.blob is None:
            raise SnapshotError(f"snapshot manifest: {path} has no stored content")
        blob = self.blobs / entry.blob
        if not blob.is_file():
            raise SnapshotError(f"snapshot store lost the content of {path} ({blob})")
        self.copier.copy(blob, temp)
        _apply_metadata(temp, entry)
        os.replace(temp, path)

    def _prune(self, directory: Path, recorded: set[str]) -> None:
        with os.scandir(directory) as children:
            extra = [Path(child.path) for child in children if child.path not in recorded]
        for path in extra:
            logger.debug("restore removes %s (created after the snapshot)", path)
            current = _lstat(path)
            if current is not None:
                _remove(path, current)


def _same_kind(entry: SnapshotEntry, current: os.stat_result) -> bool:
    if entry.kind == "special":
        return stat.S_IFMT(current.st_mode) == stat.S_IFMT(entry.mode) and (
            current.st_rdev == entry.rdev
        )
    check = {"file": stat.S_ISREG, "dir": stat.S_ISDIR, "symlink": stat.S_ISLNK}[entry.kind]
    return check(current.st_mode)


def _apply_metadata(path: Path, entry: SnapshotEntry) -> None:
    """Owner, mode, times, each only if it differs (every change bumps ctime)."""
    current = os.lstat(path)
    is_link = stat.S_ISLNK(current.st_mode)
    if (current.st_uid, current.st_gid) != (entry.uid, entry.gid):
        os.lchown(path, entry.uid, entry.gid)
    if not is_link and stat.S_IMODE(current.st_mode) != stat.S_IMODE(entry.mode):
        os.chmod(path, stat.S_IMODE(entry.mode))
    if current.st_mtime_ns != entry.mtime_ns:
        os.utime(path, ns=(entry.atime_ns, entry.mtime_ns), follow_symlinks=False)


def _identity(st: os.stat_result) -> tuple[int, int, int]:
    """Changes whenever anything writes to, chmods, renames or links the inode."""
    return (st.st_dev, st.st_ino, st.st_ctime_ns)


def _temp_path(path: Path) -> Path:
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:16]
    return path.parent / f".meisitong-restore-{digest}"


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


def _remove(path: Path, current: os.stat_result) -> None:
    if stat.S_ISDIR(current.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)

