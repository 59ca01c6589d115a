"""A full description of a directory tree, for "byte-identical to before" assertions."""

from __future__ import annotations

import os
import stat
from pathlib import Path


def tree_state(root: Path) -> dict[str, tuple[object, ...]]:
    """Every entry under `root` (itself included): type, mode, owner, mtime and
    content (files), target (symlinks) or device numbers (special files)."""
    state: dict[str, tuple[object, ...]] = {}
    pending = [Path(root)]
    while pending:
        path = pending.pop()
        st = os.lstat(path)
        key = str(path.relative_to(root))
        common = (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)
        if stat.S_ISDIR(st.st_mode):
            state[key] = ("dir", *common, st.st_mtime_ns)
            pending.extend(path / name for name in os.listdir(path))
        elif stat.S_ISLNK(st.st_mode):
            state[key] = ("symlink", os.readlink(path), st.st_mtime_ns)
        elif stat.S_ISREG(st.st_mode):
            state[key] = ("file", *common, st.st_mtime_ns, path.read_bytes(), st.st_nlink)
        else:
            state[key] = ("special", stat.S_IFMT(st.st_mode), *common, st.st_rdev)
    return state
