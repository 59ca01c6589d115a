"""Install a payload by extracting its tar archive into a declared root.

Two modes (`install.mode`):

- "overlay" (the default): the archive's members are written over the root; what the
  archive does not hold stays. What gets snapshotted (`planned_paths`) is chosen so that
  restore is exact and costs what the archive touches, not the size of the root:
  every file, symlink and hard link member; every directory member with no member
  beneath it; nothing more for directories that have members beneath them (the snapshot
  records the parent directory of each path it takes, and a directory that did not
  exist is recorded as absent at its highest missing ancestor, so restore removes it).
- "replace" (a major upgrade): the archive becomes the whole new tree. It is extracted
  into a staging directory beside the root, the `preserve` paths are copied in from the
  old tree, and the two are swapped by renames. The whole root is snapshotted.

`preserve` paths (relative to the root: configs, user profiles) keep the endpoint's
version across the install: in overlay mode those the archive would overwrite are put
back after extraction. Every step can be rerun after a crash half way: a half-done swap
is finished or undone from what is on disk, and `rollback` removes the staging and
leftover directories (the snapshot restore does the rest).
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import trio

from agent.archive import extract_archive, inspect_archive
from agent.atomic_file import fsync_directory
from agent.disk_space import SpaceNeed, tree_bytes
from agent.errors import InstallError
from agent.install_prefix import InstallPrefix
from agent.installers.base import Installer
from agent.snapshots.file_copy import sync_filesystem
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
        if self.spec.mode == "replace":
            return [root]
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

    def _space_needed(self, payload: Path, prefix: InstallPrefix, workdir: Path) -> list[SpaceNeed]:
        root = prefix.place(self.spec.root)
        size = sum(member.size for member in inspect_archive(payload))
        needs = [SpaceNeed(root, size, "install")]
        if self.spec.preserve:
            preserved = tree_bytes(root / path for path in self.spec.preserve)
            needs.append(SpaceNeed(workdir, preserved, "preserved paths"))
        return needs

    async def _install(self, payload: Path, prefix: InstallPrefix, workdir: Path) -> None:
        root = prefix.place(self.spec.root)
        await trio.to_thread.run_sync(self._install_sync, payload, root, workdir)

    def _install_sync(self, payload: Path, root: Path, workdir: Path) -> None:
        staging, old = _siblings(root)
        try:
            _settle_swap(root, old)
            stash = workdir / "preserved"
            if self.spec.mode == "replace":
                _remove(staging)
                extract_archive(payload, staging)
                _stash(root, self.spec.preserve, stash)
                _unstash(stash, staging, self.spec.preserve)
                _swap_in(root, staging, old)
            else:
                touched = {m.name for m in inspect_archive(payload)}
                wanted = [p for p in self.spec.preserve if _touches(p, touched)]
                _stash(root, wanted, stash)
                extract_archive(payload, root)
                _unstash(stash, root, wanted)
            _remove(stash)
            sync_filesystem(root)  # on disk before the journal says `checking`
        except OSError as exc:
            raise InstallError(
                f"installing into {root}: {exc.strerror or exc} ({exc.filename or root})"
            ) from exc

    async def _rollback(self, payload: Path, prefix: InstallPrefix, workdir: Path) -> None:
        root = prefix.place(self.spec.root)
        staging, old = _siblings(root)

        def undo() -> None:
            _remove(staging)
            _settle_swap(root, old)
            _remove(workdir / "preserved")
            _remove(workdir / "preserved.partial")

        await trio.to_thread.run_sync(undo)


def _siblings(root: Path) -> tuple[Path, Path]:
    """Where replace mode stages the new tree and parks the old one: beside the root,
    on its filesystem, so the swap is two renames."""
    return root.parent / f".{root.name}.meisitong-new", root.parent / f".{root.name}.meisitong-old"


def _settle_swap(root: Path, old: Path) -> None:
    """After a crash inside `_swap_in`: the old tree parked and no root means the swap was
    half done, so put the old one back; both present means it was done, so drop the old."""
    if not os.path.lexists(old):
        return
    if os.path.lexists(root):
        _remove(old)
    else:
        os.rename(old, root)
        fsync_directory(root.parent)


def _swap_in(root: Path, staging: Path, old: Path) -> None:
    if os.path.lexists(root):
        shutil.copystat(root, staging)  # the root's own mode and times are the endpoint's
        os.rename(root, old)
    os.rename(staging, root)
    fsync_directory(root.parent)
    _remove(old)


def _touches(preserved: str, members: set[str]) -> bool:
    key = preserved.strip("/")
    return any(name == key or name.startswith(key + "/") for name in members)


def _stash(root: Path, preserve: list[str], stash: Path) -> None:
    """Copy the preserved paths aside. A complete stash left by an interrupted install is
    kept: the root may already hold the payload's version of those paths by then."""
    if stash.is_dir():
        return
    partial = stash.with_name(stash.name + ".partial")
    _remove(partial)
    partial.mkdir(parents=True)
    for relative in preserve:
        source = root / relative.strip("/")
        if not os.path.lexists(source):
            continue
        dest = partial / relative.strip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        _copy(source, dest)
        logger.info("preserving %s across the install", source)
    os.rename(partial, stash)


def _unstash(stash: Path, root: Path, preserve: list[str]) -> None:
    for relative in preserve:
        source = stash / relative.strip("/")
        if not os.path.lexists(source):
            continue
        dest = root / relative.strip("/")
        _remove(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        _copy(source, dest)


def _copy(source: Path, dest: Path) -> None:
    if source.is_dir() and not source.is_symlink():
        shutil.copytree(source, dest, symlinks=True)
    else:
        shutil.copy2(source, dest, follow_symlinks=False)


def _remove(path: Path) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)
