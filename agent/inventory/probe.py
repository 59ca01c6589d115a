"""`python -m agent.inventory.probe`: collect this device's inventory and print it as
JSON, then exit.

The daemon runs this as a child process for every collection, so psutil and the parsing
of a few thousand package lines never stay in the daemon's memory (issue 10: an idle
agent's footprint must not grow). Collection uses the standard library and psutil only;
given `--device-id` it also builds the next unsigned record (agent/inventory/child_build.py)
and prints that for the daemon to sign.

Packages come from `dpkg-query -W` with binary name, version, architecture, source name
and source version; only packages whose files are on the system count (not `rc`, config
files only, nor `n`). A device without dpkg-query has no Debian packages: an empty list.
dpkg-query failing otherwise is an error (exit 2): a record claiming no packages would
be a lie in the hub's history.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

DPKG_FORMAT = ("${db:Status-Abbrev}\\t${Package}\\t${Version}\\t${Architecture}\\t"
               "${source:Package}\\t${source:Version}\\n")
NOT_INSTALLED = ("n", "c")
"""Second letter of `db:Status-Abbrev`: not installed, or only its config files left."""


def os_release(path: Path = Path("/etc/os-release")) -> dict[str, str]:
    """ID, VERSION_ID, VERSION_CODENAME and PRETTY_NAME of os-release(5)."""
    values: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if not sep or key.startswith("#"):
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        values[key] = value
    return {"id": values.get("ID", "")[:64], "version_id": values.get("VERSION_ID", "")[:64],
            "codename": values.get("VERSION_CODENAME", "")[:64],
            "pretty_name": values.get("PRETTY_NAME", "")[:200]}


def dpkg_packages(dpkg_query: str) -> list[list[str]]:
    """[name, version, architecture, source, source_version] of installed packages."""
    try:
        done = subprocess.run([dpkg_query, "-W", f"-f={DPKG_FORMAT}"], capture_output=True,
                              timeout=120, check=False)
    except FileNotFoundError:
        return []
    if done.returncode != 0:
        raise RuntimeError(f"{dpkg_query} -W failed (exit {done.returncode}): "
                           f"{done.stderr.decode('utf-8', 'replace').strip()[:300]}")
    rows = []
    for line in done.stdout.decode("utf-8", "replace").splitlines():
        parts = line.split("\t")
        if len(parts) != 6 or len(parts[0]) < 2 or parts[0][1] in NOT_INSTALLED:
            continue
        _status, name, version, arch, source, source_version = (p.strip() for p in parts)
        # Older dpkg prints "name (version)" in source:Package when they differ.
        source, _, inline = source.partition(" (")
        rows.append([name, version, arch, source or name,
                     source_version or inline.rstrip(")") or version])
    return rows


def cpu_model(path: Path = Path("/proc/cpuinfo")) -> str:
    try:
        for line in path.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "Hardware"):
                return value.strip()[:200]
    except OSError:
        pass
    return ""


DMI_PRODUCT_NAME = Path("/sys/class/dmi/id/product_name")
DEVICE_TREE_MODEL = Path("/proc/device-tree/model")


def product_name(dmi: Path = DMI_PRODUCT_NAME, device_tree: Path = DEVICE_TREE_MODEL) -> str:
    """The hardware model, for the compatibility matrix (a release that breaks on one
    model): DMI's product name on PCs, servers and VMs, else the device tree's model
    (ARM boards), NUL-terminated there. World-readable both; "" when neither exists."""
    for path in (dmi, device_tree):
        try:
            text = path.read_bytes().decode("utf-8", "replace")
        except OSError:
            continue
        text = " ".join(text.replace("\x00", " ").split())
        if text:
            return text[:200]
    return ""


def hardware(disk: Path) -> dict[str, Any]:
    import psutil

    usage = psutil.disk_usage(str(disk))
    return {"cpu_count": psutil.cpu_count() or 0, "cpu_model": cpu_model(),
            "product_name": product_name(),
            "memory_bytes": psutil.virtual_memory().total,
            "disk_total_bytes": usage.total, "disk_free_bytes": usage.free}


def collect(dpkg_query: str, disk: Path, os_release_path: Path) -> dict[str, Any]:
    uname = os.uname()
    return {"os": os_release(os_release_path), "kernel": uname.release[:128],
            "architecture": uname.machine[:32], "hardware": hardware(disk),
            "packages": dpkg_packages(dpkg_query)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agent.inventory.probe")
    parser.add_argument("--dpkg-query", default="dpkg-query")
    parser.add_argument("--disk", type=Path, default=Path("/"))
    parser.add_argument("--os-release", type=Path, default=Path("/etc/os-release"))
    parser.add_argument("--device-id", default="",
                        help="print the next record of this device instead of the findings")
    parser.add_argument("--sequence", type=int, default=1)
    parser.add_argument("--collected-at", default="")
    parser.add_argument("--releases", default="[]", help="JSON [[name, version, release]]")
    parser.add_argument("--base", type=Path, default=None, help="the last full record")
    args = parser.parse_args(argv)
    try:
        found = collect(args.dpkg_query, args.disk, args.os_release)
        if args.device_id:
            from agent.inventory.child_build import build_output

            found = build_output(found, json.loads(args.releases), args.device_id,
                                 args.sequence, args.collected_at, args.base)
    except (RuntimeError, OSError, ValueError, subprocess.TimeoutExpired) as exc:
        print(f"inventory probe: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - an AgentError (InventoryError) among others
        print(f"inventory probe: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(json.dumps(found, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
