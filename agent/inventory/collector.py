"""Collect the next record: the probe (and record builder) in a child process.

`change_marker` is the cheap look the reporter takes every `check_interval`: the
modification time and size of dpkg's status file (dpkg rewrites it on every install,
upgrade and removal), of /etc/os-release, the running kernel and the releases the journal
says are installed. Only when it moves (or a record is due anyway) is the child run; it
prints the next unsigned record and its fingerprint (agent/inventory/child_build.py),
which the daemon validates (fields only: the rows stay packed) and signs.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import trio

from agent.config import InventorySection
from agent.errors import InventoryError, WireFormatError
from agent.wire.decoding import decode_json
from agent.wire.inventory import MAX_INVENTORY_BYTES, InventoryRecord
from agent.wire.validation import parse_model

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
                  releases: list[tuple[str, str, str]], device_id: str, sequence: int,
                  collected_at: str, base: Path | None) -> tuple[str, InventoryRecord]:
    """(fingerprint, unsigned record); a diff against `base` if given and usable.
    Raises InventoryError if the child fails or prints something not its format."""
    argv = [sys.executable, "-P", "-m", "agent.inventory.probe",
            "--dpkg-query", settings.dpkg_query, "--disk", str(disk),
            "--device-id", device_id, "--sequence", str(sequence),
            "--collected-at", collected_at, "--releases", json.dumps(releases)]
    if base is not None:
        argv += ["--base", str(base)]
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
    if len(done.stdout) > MAX_INVENTORY_BYTES + 4096:
        raise InventoryError("inventory probe printed more than a record may hold")
    try:
        output = decode_json(done.stdout, "inventory probe output", InventoryError)
        record = parse_model(InventoryRecord, output["record"], "inventory probe record")
        fingerprint = str(output["fingerprint"])
    except (KeyError, TypeError, WireFormatError) as exc:
        raise InventoryError(f"inventory probe output not understood: {exc}") from None
    return fingerprint, record
