"""Collect a Snapshot: the probe in a child process, the releases from the journal.

`change_marker` is the cheap look the reporter takes every `check_interval`: the
modification time and size of dpkg's status file (dpkg rewrites it on every install,
upgrade and removal), of /etc/os-release, the running kernel and the releases the journal
says are installed. Only when it moves (or a record is due anyway) is the probe run.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import trio

from agent.config import InventorySection
from agent.errors import InventoryError, WireFormatError
from agent.inventory.records import Snapshot
from agent.wire.decoding import decode_json
from agent.wire.inventory import Hardware, HeldRelease, OsRelease, PackageRow, parse_rows

log = logging.getLogger(__name__)

PROBE_TIMEOUT = 180.0
OS_RELEASE = Path("/etc/os-release")


def change_marker(settings: InventorySection, releases: list[tuple[str, str, str]]) -> str:
    parts = [os.uname().release, repr(releases)]
    for path in (settings.dpkg_status, OS_RELEASE):
        try:
            stat = path.stat()
            parts.append(f"{stat.st_mtime_ns}:{stat.st_size}")
        except OSError:
            parts.append("-")
    return "|".join(parts)


async def collect(settings: InventorySection, disk: Path,
                  releases: list[tuple[str, str, str]]) -> Snapshot:
    """Raises InventoryError if the probe fails or prints something not its format."""
    argv = [sys.executable, "-P", "-m", "agent.inventory.probe",
            "--dpkg-query", settings.dpkg_query, "--disk", str(disk)]
    try:
        with trio.fail_after(PROBE_TIMEOUT):
            done = await trio.run_process(argv, capture_stdout=True, capture_stderr=True,
                                          check=False)
    except trio.TooSlowError:
        raise InventoryError(f"inventory probe took longer than {PROBE_TIMEOUT:.0f} s") from None
    except OSError as exc:
        raise InventoryError(f"inventory probe could not start: {exc}") from None
    if done.returncode != 0:
        raise InventoryError(f"inventory probe failed (exit {done.returncode}): "
                             f"{done.stderr.decode('utf-8', 'replace').strip()[-300:]}")
    return parse_probe(done.stdout, releases)


def parse_probe(output: bytes, releases: list[tuple[str, str, str]]) -> Snapshot:
    try:
        found = decode_json(output, "inventory probe output", InventoryError)
        rows: list[PackageRow] = []
        for row in found["packages"]:
            try:
                rows.extend(parse_rows([row], "dpkg-query"))
            except WireFormatError as exc:  # one odd local package must not hide the rest
                log.warning("inventory leaves out a package: %s", exc)
        return Snapshot(
            os=OsRelease(**found["os"]), kernel=found["kernel"],
            architecture=found["architecture"], hardware=Hardware(**found["hardware"]),
            packages=_unique(rows),
            releases=[HeldRelease(name=name, version=version, release=release)
                      for name, version, release in releases],
        )
    except (KeyError, TypeError, ValueError) as exc:  # pydantic's ValidationError included
        raise InventoryError(f"inventory probe output not understood: {exc}") from None


def _unique(rows: list[PackageRow]) -> list[PackageRow]:
    by_key = {f"{row[0]}:{row[2]}": row for row in rows}
    return list(by_key.values())
