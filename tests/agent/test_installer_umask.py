"""What the agent installs does not inherit its private umask (UMask=0077 in its unit):
programs it runs (dpkg, install scripts) get umask 022 (agent/process_group.py), and the
directories its own extraction creates without an archive entry get 0755
(agent/archive.py)."""

from __future__ import annotations

import io
import os
import stat
import sys
import tarfile
from contextlib import contextmanager

from agent.archive import extract_archive
from agent.process_group import base_environment, run_program


@contextmanager
def agent_umask(mask: int = 0o077):
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


async def test_a_program_the_agent_runs_creates_files_with_the_usual_modes(tmp_path):
    script = (
        "import os, sys; d = sys.argv[1]; os.mkdir(d + '/share');"
        "open(d + '/share/readme', 'w').close();"
        "print(oct(os.umask(0)))"
    )
    with agent_umask():
        done = await run_program([sys.executable, "-c", script, str(tmp_path)],
                                 env=base_environment())
        mine = os.umask(0o077)  # the agent's own umask is left as it was
    assert done.returncode == 0, done.stdout
    assert done.stdout.decode().strip() == "0o22"
    assert mine == 0o077
    assert mode(tmp_path / "share") == 0o755
    assert mode(tmp_path / "share/readme") == 0o644


def test_extraction_gives_directories_the_archive_does_not_describe_0755(tmp_path):
    payload = tmp_path / "payload.tar"
    with tarfile.open(payload, "w") as tar:  # a member without its parent directories
        data = b"#!/bin/sh\n"
        info = tarfile.TarInfo("bin/tools/run")
        info.size, info.mode = len(data), 0o750
        tar.addfile(info, io.BytesIO(data))
        listed = tarfile.TarInfo("etc")
        listed.type, listed.mode = tarfile.DIRTYPE, 0o750
        tar.addfile(listed)
    dest = tmp_path / "opt" / "app"
    with agent_umask():
        extract_archive(payload, dest)
    assert mode(tmp_path / "opt") == 0o755  # a missing parent of the install root
    assert mode(dest) == 0o755
    assert mode(dest / "bin") == mode(dest / "bin/tools") == 0o755
    assert mode(dest / "bin/tools/run") == 0o750  # the archive's modes stay the archive's
    assert mode(dest / "etc") == 0o750
