"""Install a payload by extracting its tar archive into a declared root.

What gets snapshotted (`planned_paths`), chosen so that restore is exact and costs what
the archive touches, not the size of the root:
- every file, symlink and hard link member, at its place under the root;
- every directory member that has no member beneath it (its whole existing content is
  recorded; an empty directory is cheap, a populated one is what it is);
- nothing more for directory members that have members beneath them: the snapshot
  records the parent directory of each path it takes (mode, owner, mtime), and a
  directory that did not exist is recorded as absent at its highest missing ancestor,
  so restore removes it whole.
The archive's own root entry is never applied (see `agent.archive`), and a missing root
is a missing ancestor like any other.
"""

from __future__ import annotations

import logging
from pathlib import Path

import trio

from agent.archive import extract_archive, inspect_archive
from agent.install_prefix import InstallPrefix
from agent.installers.base import Installer
from agent.wire.release import FileTreeInstall

logger = logging.getLogger(__name__)


class FileTreeInstaller(Installer):
    """`install.type = "file-tree"`: extract the payload into `root`."""

    kind = "file-tree"
    idempotent = True

    def __init__(self, spec: FileTreeInstall) -> None:
        self.spec = spec

    def _planned_paths(self, payload: Path, prefix: InstallPrefix) -> list[Path]:
        root = prefix.place(self.spec.root)
        members = inspect_archive(payload)
        parents = {
            "/".join(member.name.split("/")[:depth])
            for member in members
            for depth in range(1, member.name.count("/") + 1)
        }
        planned = [
            root / member.name
            for member in members
            if member.type != "dir" or member.name not in parents
        ]
        if not root.exists():
            planned.append(root)  # created by extraction even from an empty archive
        return planned

    async def _install(self, payload: Path, prefix: InstallPrefix, workdir: Path) -> None:
        root = prefix.place(self.spec.root)
        await trio.to_thread.run_sync(extract_archive, payload, root)

    async def _rollback(self, payload: Path, prefix: InstallPrefix, workdir: Path) -> None:
        logger.debug("file-tree rollback: nothing beyond the snapshot restore")
