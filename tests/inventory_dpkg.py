"""A stand-in for dpkg-query in tests: a script printing a package list from a file, in
the format the probe asks dpkg-query for, and that file as dpkg's status file."""

from __future__ import annotations

import os
from pathlib import Path

from agent.wire.inventory import PackageRow


def write_packages(path: Path, rows: list[PackageRow], removed_with_config: int = 2) -> None:
    """`rows` as installed ("ii"), plus a few packages only their config files remain of
    ("rc"), which the probe must leave out. Written atomically, as dpkg does."""
    lines = [f"ii \t{n}\t{v}\t{a}\t{s}\t{sv}" for n, v, a, s, sv in rows]
    lines += [f"rc \tgone-package-{i}\t1.0-1\tamd64\tgone-package-{i}\t1.0-1"
              for i in range(removed_with_config)]
    temporary = path.with_suffix(".tmp")
    temporary.write_text("\n".join(lines) + "\n")
    os.replace(temporary, path)


def fake_dpkg_query(directory: Path, packages: Path) -> Path:
    script = directory / "dpkg-query"
    script.write_text(f'#!/bin/sh\nexec cat "{packages}"\n')
    script.chmod(0o755)
    return script
