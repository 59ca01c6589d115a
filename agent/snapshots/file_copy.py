"""Copy a file's bytes, sharing extents (reflink) where the filesystem allows.

On btrfs and XFS (and others with FICLONE) a clone costs almost nothing however large
the file; elsewhere (ext4) it is an ordinary kernel-side copy. The copier remembers
which filesystem pairs refused a clone so it asks once, and counts what it did so a
snapshot can report whether it was cheap.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import logging
import os
import shutil
from pathlib import Path
from typing import Literal

logger = logging.getLogger(__name__)

FICLONE = 0x40049409
"""ioctl(dest_fd, FICLONE, src_fd): share all of src's extents with dest (linux/fs.h)."""

_CLONE_UNSUPPORTED = {errno.EOPNOTSUPP, errno.ENOTTY, errno.EXDEV, errno.EINVAL, errno.ENOSYS}

CopyMethod = Literal["reflink", "copy", "mixed", "none"]


class FileCopier:
    """Copies file contents (not metadata) into new files, by reflink or by copy."""

    def __init__(self) -> None:
        self.reflinks = 0
        self.copies = 0
        self._no_clone: set[tuple[int, int]] = set()

    @property
    def method(self) -> CopyMethod:
        if self.reflinks and self.copies:
            return "mixed"
        if self.reflinks:
            return "reflink"
        return "copy" if self.copies else "none"

    def copy(self, source: Path, dest: Path) -> None:
        """Write `source`'s bytes to `dest` (replaced if present), mode 0600."""
        with open(source, "rb") as src:
            src_dev = os.fstat(src.fileno()).st_dev
            fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            with os.fdopen(fd, "wb") as dst:
                pair = (src_dev, os.fstat(dst.fileno()).st_dev)
                if pair not in self._no_clone:
                    try:
                        fcntl.ioctl(dst.fileno(), FICLONE, src.fileno())
                    except OSError as exc:
                        if exc.errno not in _CLONE_UNSUPPORTED:
                            raise
                        logger.debug("no reflink from dev %d to dev %d: %s", *pair, exc.strerror)
                        self._no_clone.add(pair)
                    else:
                        self.reflinks += 1
                        return
        shutil.copyfile(source, dest)  # sendfile/copy_file_range in the kernel
        self.copies += 1


def sync_filesystem(path: Path) -> None:
    """Flush the filesystem holding `path` (syncfs), or everything if syncfs is missing.

    One syncfs after writing many files is far cheaper than an fsync per file, and makes
    a snapshot or a restore durable before the journal says it is done.
    """
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        syncfs = getattr(ctypes.CDLL(None, use_errno=True), "syncfs", None)
        if syncfs is None or syncfs(fd) != 0:
            os.sync()
    finally:
        os.close(fd)
