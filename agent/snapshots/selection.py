"""Which snapshot backend takes a deployment's snapshot, and which one restores it.

A btrfs snapshot when the install root is a btrfs subvolume and every path the install
changes lies inside it; otherwise the file-tree copy, which works everywhere. A
manifest names the backend that took it, so restore needs nothing but the manifest.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from agent.errors import SnapshotError
from agent.snapshots.backend import SnapshotBackend
from agent.snapshots.btrfs_snapshot import BtrfsSnapshot, is_btrfs_subvolume
from agent.snapshots.file_tree_snapshot import FileTreeSnapshot
from agent.snapshots.manifest import SnapshotManifest


def backend_for_paths(
    paths: Sequence[Path], install_root: Path | None, default: SnapshotBackend
) -> SnapshotBackend:
    if (
        install_root is not None
        and paths
        and all(p == install_root or install_root in Path(p).parents for p in paths)
        and is_btrfs_subvolume(install_root)
    ):
        return BtrfsSnapshot(install_root)
    return default


def backend_for_manifest(manifest: SnapshotManifest, default: SnapshotBackend) -> SnapshotBackend:
    if manifest.backend == default.name:
        return default
    if manifest.backend == BtrfsSnapshot.name:
        return BtrfsSnapshot(Path(manifest.paths[0]))
    if manifest.backend == FileTreeSnapshot.name:
        return FileTreeSnapshot()
    raise SnapshotError(f"snapshot {manifest.store}: unknown backend {manifest.backend!r}")
