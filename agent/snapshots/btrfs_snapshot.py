"""Snapshot an install root that is a btrfs subvolume with a btrfs snapshot.

Taking it costs metadata only, whatever the size of the tree; a revert swaps the whole
subvolume back, so everything inside the root returns to the snapshot (that is the
contract of putting an install root on its own subvolume: state that must survive a
revert lives elsewhere, or in `preserve` paths the install carries forward).

The read-only snapshot is kept beside the root (`.NAME.meisitong-snapshot-KEY`): a
btrfs snapshot must be on the root's filesystem, which the agent's state directory
need not be. Restore, each step checked on disk so it can be rerun after a crash:

1. the installed root is renamed aside (`.NAME.meisitong-reverted`);
2. a writable snapshot of the read-only one becomes the root;
3. the renamed-aside tree is deleted.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path

from agent.errors import SnapshotError
from agent.snapshots.backend import SnapshotBackend
from agent.snapshots.file_copy import sync_filesystem
from agent.snapshots.manifest import SnapshotManifest

logger = logging.getLogger(__name__)

BTRFS_SUPER_MAGIC = 0x9123683E
SUBVOLUME_ROOT_INODE = 256


def is_btrfs_subvolume(path: Path) -> bool:
    """True if `path` is the top directory of a btrfs subvolume (and btrfs-progs exist)."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    if not os.path.isdir(path) or os.path.islink(path) or st.st_ino != SUBVOLUME_ROOT_INODE:
        return False
    return _filesystem_type(path) == BTRFS_SUPER_MAGIC and shutil.which("btrfs") is not None


class BtrfsSnapshot(SnapshotBackend):
    """Snapshots the subvolume `root`; every path to snapshot must lie inside it."""

    name = "btrfs"

    def __init__(self, root: Path) -> None:
        self.root = Path(os.path.normpath(root))

    def _take(self, paths: list[Path], store: Path) -> SnapshotManifest:
        for path in paths:
            if path != self.root and self.root not in path.parents:
                raise SnapshotError(f"{path} is outside the btrfs subvolume {self.root}")
        if not is_btrfs_subvolume(self.root):
            raise SnapshotError(f"{self.root} is not a btrfs subvolume")
        snapshot = self.root.parent / f".{self.root.name}.meisitong-snapshot-{store.name}"
        if os.path.lexists(snapshot):
            _delete_tree(snapshot)  # a partial one from an interrupted take
        _btrfs("subvolume", "snapshot", "-r", str(self.root), str(snapshot))
        return SnapshotManifest(
            backend=self.name, store=str(snapshot), paths=[str(self.root)],
            copy_method="reflink", entries=[],
        )

    def _restore(self, manifest: SnapshotManifest) -> None:
        snapshot, root = Path(manifest.store), Path(manifest.paths[0])
        aside = root.parent / f".{root.name}.meisitong-reverted"
        if not is_btrfs_subvolume(snapshot):
            raise SnapshotError(f"btrfs snapshot {snapshot} is missing; cannot restore {root}")
        if os.path.lexists(aside) and os.path.lexists(root):
            _delete_tree(aside)  # steps 1-2 done by an interrupted restore
            sync_filesystem(root)
            return
        if os.path.lexists(root):
            os.rename(root, aside)
        _btrfs("subvolume", "snapshot", str(snapshot), str(root))
        if os.path.lexists(aside):
            _delete_tree(aside)
        sync_filesystem(root)

    def _discard(self, manifest: SnapshotManifest) -> None:
        if os.path.lexists(manifest.store):
            _delete_tree(Path(manifest.store))

    def _verify(self, manifest: SnapshotManifest) -> str:
        snapshot, root = Path(manifest.store), Path(manifest.paths[0])
        if not is_btrfs_subvolume(root):
            raise SnapshotError(f"revert check: {root} is not a btrfs subvolume any more")
        count = 0
        for dirpath, dirnames, filenames in os.walk(snapshot):
            relative = Path(dirpath).relative_to(snapshot)
            live_names = set(os.listdir(root / relative))
            if live_names != set(dirnames) | set(filenames):
                raise SnapshotError(f"revert check: {root / relative} holds other entries")
            for name in [".", *dirnames, *filenames]:
                _same_entry(snapshot / relative / name, root / relative / name)
                count += 1
        return f"restored subvolume matches its snapshot: {count} paths"


def _same_entry(recorded: Path, live: Path) -> None:
    a, b = os.lstat(recorded), os.lstat(live)
    if (a.st_mode, a.st_uid, a.st_gid) != (b.st_mode, b.st_uid, b.st_gid):
        raise SnapshotError(f"revert check: {live}: type, mode or owner differs")
    if os.path.islink(recorded) and os.readlink(recorded) != os.readlink(live):
        raise SnapshotError(f"revert check: {live}: link target differs")
    if os.path.isfile(recorded) and (a.st_size, a.st_mtime_ns) != (b.st_size, b.st_mtime_ns):
        raise SnapshotError(f"revert check: {live}: size or modification time differs")


def _delete_tree(path: Path) -> None:
    if is_btrfs_subvolume(path):
        _btrfs("subvolume", "delete", "--commit-after", str(path))
    elif os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def _btrfs(*args: str) -> None:
    try:
        done = subprocess.run(["btrfs", *args], capture_output=True, text=True, timeout=600,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SnapshotError(f"btrfs {' '.join(args[:2])}: {exc}") from None
    if done.returncode != 0:
        raise SnapshotError(f"btrfs {' '.join(args)}: {done.stderr.strip()[-300:]}")


def _filesystem_type(path: Path) -> int:
    """statfs(2) f_type; Python's os.statvfs does not expose it."""
    import ctypes

    class _StatFs(ctypes.Structure):
        _fields_ = [("f_type", ctypes.c_long), ("_rest", ctypes.c_byte * 120)]

    buffer = _StatFs()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.statfs(os.fsencode(path), ctypes.byref(buffer)) != 0:
        return 0
    return int(buffer.f_type) & 0xFFFFFFFF
