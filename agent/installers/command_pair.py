"""Install a payload by running the install program it ships; revert with its rollback.

The payload is extracted (safely, `agent.archive`) into `workdir/payload`; the programs
named by the spec must be regular files inside it. They run without a shell, with that
directory as cwd and a small environment:

- MEISITONG_ROOT: the install prefix (`/` on an endpoint);
- MEISITONG_PAYLOAD_DIR: the extracted payload;
- PATH, LANG.

stdout and stderr go together to `workdir/<program>.log`; a failure quotes its tail.
`spec.timeout` bounds each run; on timeout the program's whole process group is ended.
What the programs change must be listed in `spec.paths`: those are snapshotted.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
from pathlib import Path

import trio

from agent.archive import extract_archive, inspect_archive
from agent.atomic_file import write_atomic
from agent.disk_space import SpaceNeed
from agent.errors import InstallError
from agent.install_prefix import InstallPrefix
from agent.installers.base import Installer
from agent.process_group import base_environment, run_program
from agent.wire.release import CommandPairInstall

logger = logging.getLogger(__name__)

TAIL_LINES = 20
_EXTRACTED_MARK = ".meisitong-extracted"


class CommandPairInstaller(Installer):
    """`install.type = "command-pair"`: run the payload's install / rollback program."""

    kind = "command-pair"

    def __init__(self, spec: CommandPairInstall) -> None:
        self.spec = spec

    def _planned_paths(self, payload: Path, prefix: InstallPrefix) -> list[Path]:
        return [prefix.place(path) for path in self.spec.paths]

    def _space_needed(self, payload: Path, prefix: InstallPrefix, workdir: Path) -> list[SpaceNeed]:
        members = inspect_archive(payload)
        return [SpaceNeed(workdir, sum(member.size for member in members), "payload extraction")]

    async def _install(self, payload: Path, prefix: InstallPrefix, workdir: Path) -> None:
        payload_dir = await trio.to_thread.run_sync(_extract_fresh, payload, workdir)
        await self._run("install", self.spec.install, payload_dir, prefix, workdir)

    async def _rollback(self, payload: Path, prefix: InstallPrefix, workdir: Path) -> None:
        # Reuse the install's extraction (the program may have left state there); after a
        # crash that lost it, extract again.
        payload_dir = workdir / "payload"
        if not (payload_dir / _EXTRACTED_MARK).is_file():
            payload_dir = await trio.to_thread.run_sync(_extract_fresh, payload, workdir)
        await self._run("rollback", self.spec.rollback, payload_dir, prefix, workdir)

    async def _run(
        self, role: str, member: str, payload_dir: Path, prefix: InstallPrefix, workdir: Path
    ) -> None:
        program = _program_in(payload_dir, member, role)
        env = base_environment() | prefix.environment()
        env["MEISITONG_PAYLOAD_DIR"] = str(payload_dir)
        log_path = workdir / f"{role}.log"
        timeout = self.spec.timeout
        started = trio.current_time()
        with open(log_path, "wb") as log:
            try:
                with trio.fail_after(timeout):
                    completed = await run_program(
                        [str(program)], env=env, cwd=payload_dir, output=log
                    )
            except trio.TooSlowError:
                raise InstallError(
                    f"{role} program {member} timed out after {timeout:g} s"
                    f"{_tail_text(log_path)}"
                ) from None
            except OSError as exc:
                raise InstallError(f"{role} program {member} could not start: {exc}") from exc
        seconds = trio.current_time() - started
        if completed.returncode != 0:
            raise InstallError(
                f"{role} program {member} exited with code {completed.returncode}"
                f" after {seconds:.1f} s{_tail_text(log_path)}"
            )
        logger.info("%s program %s succeeded in %.1f s", role, member, seconds)


def _extract_fresh(payload: Path, workdir: Path) -> Path:
    payload_dir = workdir / "payload"
    if os.path.lexists(payload_dir):
        shutil.rmtree(payload_dir)
    extract_archive(payload, payload_dir)
    write_atomic(payload_dir / _EXTRACTED_MARK, b"", mode=0o600)
    return payload_dir


def _program_in(payload_dir: Path, member: str, role: str) -> Path:
    """The program's path, after checking it is a regular executable file inside the payload."""
    program = payload_dir / member
    real = Path(os.path.realpath(program))
    if Path(os.path.realpath(payload_dir)) not in real.parents:
        raise InstallError(f"{role} program {member} resolves outside the payload ({real})")
    try:
        mode = os.stat(real).st_mode
    except FileNotFoundError:
        raise InstallError(f"{role} program {member} is not in the payload") from None
    if not stat.S_ISREG(mode):
        raise InstallError(f"{role} program {member} in the payload is not a regular file")
    if not mode & stat.S_IXUSR:
        raise InstallError(f"{role} program {member} in the payload is not executable")
    return program


def _tail_text(log_path: Path) -> str:
    lines = _tail(log_path, TAIL_LINES)
    if not lines:
        return " (no output)"
    return f"; last {len(lines)} line(s) of output:\n" + "\n".join(lines)


def _tail(log_path: Path, count: int) -> list[str]:
    """The last `count` lines of a log that may be huge: only its end is read."""
    try:
        with open(log_path, "rb") as log:
            log.seek(0, os.SEEK_END)
            size = log.tell()
            log.seek(max(0, size - 64 * 1024))
            data = log.read()
    except OSError:
        return []
    return data.decode("utf-8", "replace").rstrip("\n").splitlines()[-count:]
