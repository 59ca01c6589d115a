"""The shape every snapshot backend has: take, restore, discard.

Public methods are final and do what all backends share (argument checks, turning
OSError into SnapshotError naming the path, logging); a backend writes `_take`,
`_restore` and `_discard`. The file-tree copy is the default; btrfs, LVM and ZFS
backends slot in beside it.
"""

from __future__ import annotations

import logging
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar, final

from agent.errors import SnapshotError
from agent.snapshots.manifest import SnapshotManifest

logger = logging.getLogger(__name__)


class SnapshotBackend(ABC):
    """Records paths before an install and puts them back, byte for byte, on revert.

    Blocking: callers in trio run these in `trio.to_thread.run_sync`.
    """

    name: ClassVar[str]

    @final
    def take(self, paths: Sequence[Path], store: Path) -> SnapshotManifest:
        """Record `paths` (absolute; existing or not) into `store`, a new directory."""
        normalised: list[Path] = []
        for path in paths:
            if not Path(path).is_absolute():
                raise SnapshotError(f"snapshot paths must be absolute, got {str(path)!r}")
            normalised.append(Path(os.path.normpath(path)))
        store = Path(os.path.normpath(Path(store).absolute()))
        started = time.monotonic()
        try:
            manifest = self._take(normalised, store)
        except OSError as exc:
            raise SnapshotError(f"cannot snapshot {exc.filename or store}: {exc.strerror}") from exc
        logger.info(
            "snapshot of %d path(s) into %s: %d entries, %d files by %s, %.2f s",
            len(normalised), store, len(manifest.entries), manifest.file_count,
            manifest.copy_method, time.monotonic() - started,
        )
        return manifest

    @final
    def restore(self, manifest: SnapshotManifest) -> None:
        """Put every recorded path back as it was; idempotent, safe to rerun after a crash."""
        self._check_backend(manifest)
        started = time.monotonic()
        try:
            self._restore(manifest)
        except OSError as exc:
            raise SnapshotError(
                f"cannot restore {exc.filename or manifest.store}: {exc.strerror}"
            ) from exc
        logger.info("restored snapshot %s in %.2f s", manifest.store, time.monotonic() - started)

    @final
    def discard(self, manifest: SnapshotManifest) -> None:
        """Delete what the snapshot stored; idempotent."""
        self._check_backend(manifest)
        try:
            self._discard(manifest)
        except OSError as exc:
            raise SnapshotError(
                f"cannot discard snapshot {manifest.store}: {exc.strerror}"
            ) from exc

    @final
    def verify(self, manifest: SnapshotManifest) -> str:
        """After a restore: check the recorded paths are as the snapshot says (type, mode,
        owner, times, size, link target; content of every file restore rewrote). A note
        on what was checked; SnapshotError naming the first path that differs."""
        self._check_backend(manifest)
        try:
            return self._verify(manifest)
        except OSError as exc:
            raise SnapshotError(
                f"cannot verify {exc.filename or manifest.store}: {exc.strerror}"
            ) from exc

    def _check_backend(self, manifest: SnapshotManifest) -> None:
        if manifest.backend != self.name:
            raise SnapshotError(
                f"snapshot {manifest.store} was taken by {manifest.backend!r}, not {self.name!r}"
            )

    @abstractmethod
    def _take(self, paths: list[Path], store: Path) -> SnapshotManifest: ...

    @abstractmethod
    def _restore(self, manifest: SnapshotManifest) -> None: ...

    @abstractmethod
    def _discard(self, manifest: SnapshotManifest) -> None: ...

    @abstractmethod
    def _verify(self, manifest: SnapshotManifest) -> str: ...
