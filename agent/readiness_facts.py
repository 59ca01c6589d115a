"""What the agent reads about its device to evaluate a release's requirements, right
before it would download (agent/deployment.py).

Cheap and narrow, so an agent's footprint does not grow: os-release, uname, /proc/meminfo
(what psutil's virtual_memory().total reads, without loading psutil into the daemon),
statvfs of the install prefix (what the inventory's disk_free_bytes measures), and
dpkg-query for the named packages only. Facts a release does not ask about are not read.
The same fields the inventory carries, read the same way, so the hub's prediction from
an inventory and the agent's own look agree while the device is unchanged.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from agent.errors import ReadinessError
from agent.readiness import DeviceFacts
from agent.wire.requirements import Requirements

OS_RELEASE = Path("/etc/os-release")
MEMINFO = Path("/proc/meminfo")
DPKG_TIMEOUT = 60.0


def memory_bytes(path: Path = MEMINFO) -> int:
    try:
        for line in path.read_text().splitlines():
            key, _, value = line.partition(":")
            if key == "MemTotal":
                return int(value.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    import psutil  # not Linux, or no /proc: psutil knows the platform

    return int(psutil.virtual_memory().total)


def installed_versions(dpkg_query: str, names: list[str]) -> dict[str, tuple[str, ...]]:
    """Installed versions of `names` (files on the system: not `rc`, not `n`).

    dpkg-query exits 1 when some name is not installed at all, and prints the others."""
    from agent.inventory.probe import DPKG_FORMAT, NOT_INSTALLED

    try:
        done = subprocess.run([dpkg_query, "-W", f"-f={DPKG_FORMAT}", "--", *names],
                              capture_output=True, timeout=DPKG_TIMEOUT, check=False)
    except FileNotFoundError:
        return {}  # no dpkg: no Debian packages
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ReadinessError(f"{dpkg_query}: {exc}") from None
    if done.returncode not in (0, 1):
        raise ReadinessError(f"{dpkg_query} -W failed (exit {done.returncode}): "
                             f"{done.stderr.decode('utf-8', 'replace').strip()[:300]}")
    wanted = set(names)
    found: dict[str, list[str]] = {}
    for line in done.stdout.decode("utf-8", "replace").splitlines():
        parts = [part.strip() for part in line.split("\t")]
        if len(parts) < 3 or len(parts[0]) < 2 or parts[0][1] in NOT_INSTALLED:
            continue
        if parts[1] in wanted:
            found.setdefault(parts[1], []).append(parts[2])
    return {name: tuple(versions) for name, versions in found.items()}


def device_facts(requires: Requirements, disk: Path, dpkg_query: str,
                 os_release_path: Path = OS_RELEASE) -> DeviceFacts:
    """The facts `requires` asks about (blocking: run in a worker thread)."""
    from agent.inventory.probe import os_release

    uname = os.uname()
    facts: dict[str, object] = {"architecture": uname.machine, "kernel": uname.release}
    if requires.os is not None:
        found = os_release(os_release_path)
        facts.update(os_id=found["id"], os_version_id=found["version_id"])
    if requires.min_ram:
        facts["memory_bytes"] = memory_bytes()
    if requires.min_free_disk:
        anchor = disk
        while not anchor.exists() and anchor.parent != anchor:
            anchor = anchor.parent
        fs = os.statvfs(anchor)
        facts["disk_free_bytes"] = fs.f_bavail * fs.f_frsize
    if requires.packages:
        facts["packages"] = installed_versions(dpkg_query, [p.name for p in requires.packages])
    return DeviceFacts(**facts)  # type: ignore[arg-type]
