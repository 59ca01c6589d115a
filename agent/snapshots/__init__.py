"""Snapshots of what an install will change, and their exact restore.

Use: `backend_for_paths(paths, install_root, FileTreeSnapshot())` picks the backend;
`take(paths, store)` → `SnapshotManifest` (journal its `to_json()`), then
`backend_for_manifest(manifest, ...)` to `restore`, `verify` and `discard` it.
"""

from agent.snapshots.backend import SnapshotBackend
from agent.snapshots.btrfs_snapshot import BtrfsSnapshot, is_btrfs_subvolume
from agent.snapshots.file_tree_snapshot import FileTreeSnapshot, load_manifest
from agent.snapshots.manifest import SnapshotEntry, SnapshotManifest
from agent.snapshots.selection import backend_for_manifest, backend_for_paths

__all__ = [
    "BtrfsSnapshot",
    "FileTreeSnapshot",
    "SnapshotBackend",
    "SnapshotEntry",
    "SnapshotManifest",
    "backend_for_manifest",
    "backend_for_paths",
    "is_btrfs_subvolume",
    "load_manifest",
]
