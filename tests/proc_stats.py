"""What /proc says about a process: memory, CPU time, the shared objects it has mapped.

Linux only (these machines are). Used by the idle-footprint test and benchmark to look
at a real daemon process from outside, the way an operator would with `ps` or `top`.
"""

from __future__ import annotations

import os
from pathlib import Path

MIB = 1024 * 1024
_TICKS = os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    """Resident set size (VmRSS), shared library pages included, as `ps` shows it."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise LookupError(f"/proc/{pid}/status has no VmRSS (a zombie?)")


def pss_bytes(pid: int) -> int:
    """Proportional set size: shared pages divided among the processes that map them."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) * 1024
    raise LookupError(f"/proc/{pid}/smaps_rollup has no Pss")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()  # the command name may hold spaces
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime


def maps_file(pid: int, fragment: str) -> bool:
    """Whether a file whose path contains `fragment` is mapped (e.g. an extension .so)."""
    return any(fragment in line for line in Path(f"/proc/{pid}/maps").read_text().splitlines())


def thread_count(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise LookupError(f"/proc/{pid}/status has no Threads")
