"""One daemon per directory, refused at once when a second one starts.

Two `meisitong-agent run` on one state directory each believe they own the journal, the
boot counter and the seeded payloads: the second one counted a boot the first one had
not made and deleted the payload the first one was seeding. Two `meisitong-hub serve`
on one hub directory both re-sign the timestamp and run the rollout controller. An
advisory `flock` on a file in the directory settles it: the kernel drops the lock when
its holder exits, however it exits (kill -9 included), so no stale lock ever needs
clearing by hand, and the holder's PID written into the file lets the refusal name it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from agent.errors import AlreadyRunningError

LOCK_FILE_NAME = "daemon.lock"


@contextlib.contextmanager
def hold_directory(directory: Path, command: str) -> Iterator[None]:
    """Hold `directory` for the life of the block or raise AlreadyRunningError."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = directory / LOCK_FILE_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            who = f"PID {holder}" if holder else "another process"
            raise AlreadyRunningError(
                f"{directory}: {command} is already running here ({who}); stop it first, "
                "or give this one a directory of its own"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def _read_pid(fd: int) -> int | None:
    text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    return int(text) if text.isdigit() else None
