"""Run a program the agent was told to run (install script, health check command).

The program gets its own session, so a timeout or a cancelled lifecycle ends the whole
group it started (a script that backgrounds `sleep 1000` included), not only its first
process. SIGTERM first, SIGKILL after a grace period; the caller's deadline is trio's,
so tests can drive it with MockClock. No shell is involved: argv is executed as given.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import trio

logger = logging.getLogger(__name__)

TERMINATE_GRACE = 5.0
"""Seconds between SIGTERM and SIGKILL for a cancelled program's process group."""

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

PROGRAM_UMASK = 0o022
"""The umask programs the agent runs get: the usual one, not the agent's own. The agent's
unit sets UMask=0077 so its state (device key, journal) is private; an installer (dpkg,
a payload's install script) inheriting that would leave 0700 directories and 0600 files
in /usr and /etc that only root can use."""


def base_environment() -> dict[str, str]:
    """A small, predictable environment: no agent secrets, no inherited oddities."""
    return {"PATH": os.environ.get("PATH", DEFAULT_PATH), "LANG": "C.UTF-8"}


async def run_program(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path | None = None,
    output: IO[bytes] | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run argv to completion; stdout and stderr together into `output`, else captured.

    Never raises for a non-zero exit (the caller words that error); raises OSError when
    the program cannot be started. The program runs with umask PROGRAM_UMASK whatever the
    agent's is. On cancellation the process group is ended and the
    program reaped before the Cancelled propagates.
    """
    where: dict[str, Any] = {"capture_stdout": True} if output is None else {"stdout": output}
    return await trio.run_process(
        list(argv),
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        **where,
        check=False,
        start_new_session=True,
        umask=PROGRAM_UMASK,
        deliver_cancel=_end_process_group,
    )


async def _end_process_group(process: trio.Process) -> None:
    logger.warning("ending process group of %s (pid %d)", process.args, process.pid)
    _signal_group(process.pid, signal.SIGTERM)
    with trio.move_on_after(TERMINATE_GRACE):
        await process.wait()
    _signal_group(process.pid, signal.SIGKILL)


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):  # the whole group is gone already
        os.killpg(pgid, signum)
