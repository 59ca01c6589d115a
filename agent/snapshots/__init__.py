"""Snapshots of what an install will change, and their exact restore.

Use: `FileTreeSnapshot().take(paths, store)` → `SnapshotManifest` (journal its
`to_json()`), then `restore(manifest)` or `discard(manifest)`.
"""

from agent.snapshots.backend import SnapshotBackend
from agent.snapshots.file_tree_snapshot import FileTreeSnapshot, load_manifest
from agent.snapshots.manifest import SnapshotEntry, SnapshotManifest

__all__ = [
    "FileTreeSnapshot",
    "SnapshotBackend",
    "SnapshotEntry",
    "SnapshotManifest",
    "load_manifest",
]
