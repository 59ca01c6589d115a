"""Measure a release's health signals over a window: what the hub compares between
updated and not-yet-updated devices (hub/rollouts/regression.py) to catch a release
that passes its health checks yet restarts, crashes or eats memory more than before.

Each signal is measured where the device lets us and is None where it does not (no
units declared, no systemd, a journal this user cannot read): a missing signal is never
reported as zero. Counters are sampled at the window's start and end:

- restarts: systemd's NRestarts of the release's declared units (`systemctl show`);
- oom_kills: the kernel's `oom_kill` counter in /proc/vmstat (device-wide);
- crashes: systemd-coredump's journal entries (its MESSAGE_ID) between the two samples;
- cpu_percent, rss_bytes: the release's processes (its units' cgroups, else its declared
  process names): CPU seconds gained over the window per second (100 = one core), and
  the resident memory at its end.

psutil is imported when a window is measured, not with this module: an idle agent does
not carry it.
"""

from __future__ import annotations

import logging
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import trio

from agent.wire.health_signals import SignalWindow
from agent.wire.release import SignalsSpec

log = logging.getLogger(__name__)

COMMAND_TIMEOUT = 10.0
COREDUMP_MESSAGE_ID = "fc2e22bc6ee647b6b90729ab34a250b1"
CGROUP_ROOTS = (Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/systemd"))
VMSTAT = Path("/proc/vmstat")


@dataclass(frozen=True)
class CounterSample:
    wall: float
    monotonic: float
    restarts: int | None
    oom_kills: int | None
    cpu_seconds: dict[tuple[int, float], float]
    """(pid, create time) -> CPU seconds so far, for the release's processes."""


def _run(argv: list[str]) -> str | None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT,
                              check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        log.debug("%s: %s", argv[0], exc)
        return None
    return done.stdout if done.returncode == 0 else None


def unit_properties(unit: str) -> dict[str, str] | None:
    out = _run(["systemctl", "show", "--property=NRestarts,ControlGroup,LoadState", unit])
    if out is None:
        return None
    props = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    return props if props.get("LoadState") == "loaded" else None


def restart_count(units: list[str]) -> int | None:
    """Sum of NRestarts over the units; None without units or when one cannot be read."""
    if not units:
        return None
    total = 0
    for unit in units:
        props = unit_properties(unit)
        if props is None or not props.get("NRestarts", "").isdigit():
            return None
        total += int(props["NRestarts"])
    return total


def oom_kill_count(vmstat: Path = VMSTAT) -> int | None:
    try:
        for line in vmstat.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == "oom_kill" and value.strip().isdigit():
                return int(value)
    except OSError:
        pass
    return None  # kernels before 4.13 do not count OOM kills


def crash_count(since: float, until: float) -> int | None:
    """systemd-coredump entries in [since, until); None when the journal is unreadable."""
    out = _run(["journalctl", "--quiet", "--no-pager", "--output=cat",
                f"--since=@{int(since)}", f"--until=@{int(until) + 1}",
                f"MESSAGE_ID={COREDUMP_MESSAGE_ID}"])
    if out is None:
        return None
    return sum(1 for line in out.splitlines() if line.strip())


def unit_pids(units: list[str]) -> set[int]:
    pids: set[int] = set()
    for unit in units:
        props = unit_properties(unit) or {}
        group = props.get("ControlGroup", "").lstrip("/")
        if not group:
            continue
        for root in CGROUP_ROOTS:
            try:
                text = (root / group / "cgroup.procs").read_text()
            except OSError:
                continue
            pids.update(int(p) for p in text.split() if p.isdigit())
            break
    return pids


def release_cpu_seconds(spec: SignalsSpec) -> dict[tuple[int, float], float]:
    import psutil  # noqa: PLC0415 - only while a window is measured (module docstring)

    wanted = unit_pids(spec.units)
    names = set(spec.processes)
    seconds: dict[tuple[int, float], float] = {}
    for proc in psutil.process_iter(["pid", "name", "create_time", "cpu_times"]):
        info = proc.info
        if info["pid"] not in wanted and info["name"] not in names:
            continue
        times = info["cpu_times"]
        if times is not None:
            seconds[(info["pid"], info["create_time"])] = times.user + times.system
    return seconds


def release_rss(pids: set[int]) -> int | None:
    import psutil  # noqa: PLC0415 - only while a window is measured

    total, seen = 0, 0
    for pid in pids:
        try:
            total += psutil.Process(pid).memory_info().rss
            seen += 1
        except (psutil.Error, OSError):
            continue
    return total if seen else None


def sample(spec: SignalsSpec) -> CounterSample:
    return CounterSample(
        wall=time.time(), monotonic=time.monotonic(),
        restarts=restart_count(spec.units), oom_kills=oom_kill_count(),
        cpu_seconds=release_cpu_seconds(spec),
    )


def window_between(spec: SignalsSpec, start: CounterSample, end: CounterSample) -> SignalWindow:
    seconds = max(end.monotonic - start.monotonic, 1e-3)
    watched = spec.units or spec.processes
    cpu = rss = None
    if watched and end.cpu_seconds:
        gained = sum(used - start.cpu_seconds.get(key, 0.0)
                     for key, used in end.cpu_seconds.items())
        cpu = round(max(gained, 0.0) / seconds * 100, 3)
        rss = release_rss({pid for pid, _ in end.cpu_seconds})

    def delta(before: int | None, after: int | None) -> int | None:
        return None if before is None or after is None else max(after - before, 0)

    return SignalWindow(
        started_at=datetime.fromtimestamp(start.wall, UTC).isoformat(timespec="seconds"),
        seconds=round(seconds, 3),
        restarts=delta(start.restarts, end.restarts),
        oom_kills=delta(start.oom_kills, end.oom_kills),
        crashes=crash_count(start.wall, end.wall),
        cpu_percent=cpu, rss_bytes=rss,
    )


async def measure_window(spec: SignalsSpec, seconds: float | None = None) -> SignalWindow:
    """Sample, wait the window (trio's clock), sample again; the system calls run in a
    worker thread."""
    start = await trio.to_thread.run_sync(sample, spec)
    await trio.sleep(spec.window_seconds if seconds is None else seconds)
    end = await trio.to_thread.run_sync(sample, spec)
    return await trio.to_thread.run_sync(window_between, spec, start, end)
