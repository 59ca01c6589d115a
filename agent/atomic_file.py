"""Write files so a crash leaves either the old content or the new, never a torn file.

Private material (keys, tokens) is created with its final mode from the first byte:
the temporary file is opened 0600 before anything is written into it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace `path` with `data` atomically and durably, with permission bits `mode`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    fsync_directory(path.parent)


def write_private(path: Path, data: bytes) -> None:
    """Write a secret (key, token): mode 0600 from creation on."""
    write_atomic(path, data, mode=0o600)


def fsync_directory(directory: Path) -> None:
    """Make a rename or create inside `directory` survive power loss."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
