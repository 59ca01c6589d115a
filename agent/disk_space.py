"""Is there room to snapshot and install? Asked before the snapshot, so a device that is
short of space reports not-ready with nothing changed, instead of failing half way.

Needs are summed per filesystem (a snapshot store and an install root on the same disk
compete for the same free blocks) and compared with what an unprivileged writer could
still use (statvfs f_bavail) minus a reserve the agent never eats into. Estimates are
deliberately conservative: a file-tree snapshot counts every byte it may copy even where
reflinks would make the copy nearly free, since whether a clone succeeds is only known
when it is tried.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from agent.byte_sizes import human_size
from agent.errors import DiskSpaceError


@dataclass(frozen=True)
class SpaceNeed:
    where: Path
    """A path on the filesystem that needs the room (need not exist yet)."""
    bytes: int
    what: str
    """For the message: `snapshot`, `install`, …"""


def tree_bytes(paths: Iterable[Path]) -> int:
    """Bytes of the regular files at or beneath `paths` (hard links counted once,
    symlinks not followed, missing paths zero)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for top in paths:
        pending = [Path(top)]
        while pending:
            path = pending.pop()
            try:
                st = os.lstat(path)
            except (FileNotFoundError, NotADirectoryError):
                continue
            if os.path.isdir(path) and not os.path.islink(path):
                with os.scandir(path) as children:
                    pending.extend(Path(child.path) for child in children)
            elif (st.st_dev, st.st_ino) not in seen and os.path.isfile(path):
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


def existing_ancestor(path: Path) -> Path:
    path = Path(path)
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


def check_free_space(needs: Sequence[SpaceNeed], reserve: int) -> None:
    """Raise DiskSpaceError naming the filesystem, what needs room and how much is free."""
    by_device: dict[int, tuple[Path, int, list[str]]] = {}
    for need in needs:
        anchor = existing_ancestor(need.where)
        device = os.stat(anchor).st_dev
        where, total, whats = by_device.get(device, (anchor, 0, []))
        whats = [*whats, f"{need.what} {human_size(need.bytes)}"]
        by_device[device] = (where, total + need.bytes, whats)
    for where, total, whats in by_device.values():
        fs = os.statvfs(where)
        free = fs.f_bavail * fs.f_frsize
        if total + reserve > free:
            raise DiskSpaceError(
                f"not enough free space on the filesystem of {where}: need {human_size(total)} "
                f"({', '.join(whats)}) plus a reserve of {human_size(reserve)}, "
                f"{human_size(free)} free"
            )


