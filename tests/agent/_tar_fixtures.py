"""Build tar payloads (honest and malicious) member by member with the tarfile module."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

MTIME = 1_700_000_000

Member = tuple[tarfile.TarInfo, bytes | None]


def _info(name: str, kind: bytes, mode: int, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.mtime = MTIME
    info.linkname = linkname
    info.uname = info.gname = "root"
    return info


def file(name: str, data: bytes = b"content\n", mode: int = 0o644) -> Member:
    info = _info(name, tarfile.REGTYPE, mode)
    info.size = len(data)
    return info, data


def directory(name: str, mode: int = 0o755) -> Member:
    return _info(name, tarfile.DIRTYPE, mode), None


def symlink(name: str, target: str) -> Member:
    return _info(name, tarfile.SYMTYPE, 0o777, target), None


def hardlink(name: str, target: str, mode: int = 0o644) -> Member:
    """A hard link member; its mode is applied to the shared inode, as tar does."""
    return _info(name, tarfile.LNKTYPE, mode, target), None


def special(name: str, kind: bytes) -> Member:
    info = _info(name, kind, 0o644)
    info.devmajor, info.devminor = 1, 3
    return info, None


def build_tar(path: Path, *members: Member, compression: str = "") -> Path:
    mode = f"w:{compression}" if compression else "w"
    with tarfile.open(path, mode) as tar:  # type: ignore[call-overload]
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path
