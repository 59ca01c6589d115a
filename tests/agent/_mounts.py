"""Small filesystems made by a test: a tmpfs with a size or inode limit (disk full), a
loop-mounted btrfs or xfs image (snapshots, reflinks). They need root and permission to
mount; where that is missing the test is skipped with the reason."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)


def _skip_unless_root(what: str) -> None:
    if os.geteuid() != 0:
        pytest.skip(f"{what} needs root to mount a filesystem")


@contextlib.contextmanager
def tmpfs(mountpoint: Path, options: str) -> Iterator[Path]:
    _skip_unless_root("a tmpfs")
    mountpoint.mkdir(parents=True, exist_ok=True)
    done = _run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mountpoint)])
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        _run(["umount", "-l", str(mountpoint)])


@contextlib.contextmanager
def loop_filesystem(image: Path, mountpoint: Path, fstype: str, size: str) -> Iterator[Path]:
    """A fresh `fstype` (btrfs, xfs) in a sparse image file, loop-mounted."""
    _skip_unless_root(f"a loop-mounted {fstype}")
    mkfs = shutil.which(f"mkfs.{fstype}")
    if mkfs is None:
        pytest.skip(f"mkfs.{fstype} is not installed (make test installs btrfs-progs and "
                    "xfsprogs when run as root)")
    _run(["truncate", "-s", size, str(image)])
    made = _run([mkfs, "-q", "-f", str(image)])
    if made.returncode != 0:
        pytest.skip(f"mkfs.{fstype} failed: {made.stderr.strip()}")
    mountpoint.mkdir(parents=True, exist_ok=True)
    done = _run(["mount", "-o", "loop", str(image), str(mountpoint)])
    if done.returncode != 0:
        pytest.skip(f"cannot loop-mount {fstype} here: {done.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        _run(["umount", "-l", str(mountpoint)])
        image.unlink(missing_ok=True)
