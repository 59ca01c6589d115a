"""Run a release's health checks after an install and say, in one line, how they went.

A check is a small class per kind: the public `run` (final) owns the retry loop, the
per-attempt timeout and the pause between attempts; a kind writes `_attempt`, which
returns a short note on success and raises `AttemptFailed` (or OSError) on failure.
A hung attempt is cut by its timeout and counts as a failed attempt. All waiting is on
trio's clock, so tests drive retries and timeouts with MockClock.

Checks run in the order the release lists them and stop at the first one that fails
all its attempts: that one decides the revert, and later ones would only add time.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shlex
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Generic, TypeVar, final

import trio

from agent.errors import HealthCheckError
from agent.install_prefix import InstallPrefix
from agent.process_group import base_environment, run_program
from agent.wire.release import (
    CommandHealthCheck,
    FileHashHealthCheck,
    HealthCheck,
    HttpHealthCheck,
    ProcessHealthCheck,
    TcpHealthCheck,
)

if TYPE_CHECKING:  # a name of its own, so mypy finds a body that uses httpx unimported
    import httpx as httpx_types

logger = logging.getLogger(__name__)

SpecT = TypeVar(
    "SpecT",
    CommandHealthCheck, TcpHealthCheck, ProcessHealthCheck, HttpHealthCheck, FileHashHealthCheck,
)


@dataclass(frozen=True)
class CheckResult:
    """How one check went. `detail` is the last attempt's note (or its failure)."""

    kind: str
    target: str
    passed: bool
    attempts: int
    detail: str
    seconds: float


@dataclass(frozen=True)
class HealthReport:
    """The checks that ran, in order; `total` counts those that did not run too."""

    passed: bool
    results: list[CheckResult] = field(default_factory=list)
    total: int = 0

    def summary(self) -> str:
        """One line for logs and result records, naming the failed check and why."""
        passed = sum(1 for result in self.results if result.passed)
        line = f"{passed}/{self.total} checks passed"
        failed = next((result for result in self.results if not result.passed), None)
        if failed is not None:
            plural = "" if failed.attempts == 1 else "s"
            line += (
                f"; {failed.kind} {failed.target}: {failed.detail}"
                f" after {failed.attempts} attempt{plural}"
            )
        not_run = self.total - len(self.results)
        if not_run:
            line += f"; {not_run} not run"
        return line


class AttemptFailed(Exception):
    """One attempt of a check failed; the message says how."""


class HealthCheckRunner(ABC, Generic[SpecT]):
    """One configured check, ready to run under an install prefix."""

    kind: ClassVar[str]

    def __init__(self, spec: SpecT, prefix: InstallPrefix) -> None:
        self.spec: SpecT = spec
        self.prefix = prefix

    @property
    @abstractmethod
    def target(self) -> str:
        """What is checked, as an operator would name it (`127.0.0.1:8080`)."""

    @final
    async def run(self) -> CheckResult:
        """Attempt up to 1 + retries times, `timeout` each, `interval` apart."""
        timeout, interval = self.spec.timeout, self.spec.interval
        started = trio.current_time()
        attempts = self.spec.retries + 1
        detail = ""
        for attempt in range(1, attempts + 1):
            if attempt > 1:
                await trio.sleep(interval)
            with trio.move_on_after(timeout) as scope:
                try:
                    detail = await self._attempt()
                except AttemptFailed as exc:
                    detail = str(exc)
                except OSError as exc:
                    detail = _describe_os_error(exc)
                else:
                    return self._result(True, attempt, detail, started)
            if scope.cancelled_caught:
                detail = f"timed out after {timeout:g} s"
            logger.info(
                "health %s %s: attempt %d/%d failed: %s",
                self.kind, self.target, attempt, attempts, detail,
            )
        return self._result(False, attempts, detail, started)

    def _result(self, passed: bool, attempts: int, detail: str, started: float) -> CheckResult:
        seconds = trio.current_time() - started
        return CheckResult(self.kind, self.target, passed, attempts, detail, seconds)

    @abstractmethod
    async def _attempt(self) -> str: ...


class CommandCheck(HealthCheckRunner[CommandHealthCheck]):
    """Exit status 0 passes; output is kept for the failure note."""

    kind = "command"

    @property
    def target(self) -> str:
        return shlex.join(self.spec.argv)

    async def _attempt(self) -> str:
        argv = self.prefix.expand_argv(self.spec.argv)
        env = base_environment() | self.prefix.environment()
        try:
            completed = await run_program(argv, env=env)
        except OSError as exc:
            raise AttemptFailed(f"cannot run {argv[0]}: {_describe_os_error(exc)}") from None
        lines = (completed.stdout or b"").decode("utf-8", "replace").strip().splitlines()
        last = lines[-1][:200] if lines else "no output"
        if completed.returncode != 0:
            raise AttemptFailed(f"exit code {completed.returncode}: {last}")
        return f"exit code 0: {last}"


class TcpCheck(HealthCheckRunner[TcpHealthCheck]):
    """A completed TCP handshake passes; the connection is closed at once."""

    kind = "tcp"

    @property
    def target(self) -> str:
        return f"{self.spec.host}:{self.spec.port}"

    async def _attempt(self) -> str:
        stream = await trio.open_tcp_stream(self.spec.host, self.spec.port)
        await stream.aclose()
        return "connected"


class ProcessCheck(HealthCheckRunner[ProcessHealthCheck]):
    """A running process whose psutil `name()` equals the configured name passes."""

    kind = "process"

    @property
    def target(self) -> str:
        return self.spec.name

    async def _attempt(self) -> str:
        pid = await trio.to_thread.run_sync(_find_process, self.spec.name, abandon_on_cancel=True)
        if pid is None:
            raise AttemptFailed("no such process running")
        return f"running as pid {pid}"


class HttpCheck(HealthCheckRunner[HttpHealthCheck]):
    """GET answering with the configured status passes; the body is not read."""

    kind = "http"

    @property
    def target(self) -> str:
        return self.spec.url

    async def _attempt(self) -> str:
        import httpx  # only when a release has an HTTP check: an idle agent has none

        # The attempt's own timeout bounds everything; httpx's would use another clock.
        try:
            async with (
                httpx.AsyncClient(timeout=None, follow_redirects=False) as client,  # noqa: S113
                client.stream("GET", self.spec.url) as response,
            ):
                status = response.status_code
        except httpx.HTTPError as exc:
            raise AttemptFailed(_describe_http_error(exc)) from None
        if status != self.spec.status:
            raise AttemptFailed(f"status {status}, want {self.spec.status}")
        return f"status {status}"


class FileHashCheck(HealthCheckRunner[FileHashHealthCheck]):
    """The file's SHA-256 (under the install prefix) equal to the configured one passes."""

    kind = "file-hash"

    @property
    def target(self) -> str:
        return self.spec.path

    async def _attempt(self) -> str:
        path = self.prefix.place(self.spec.path)
        try:
            digest = await trio.to_thread.run_sync(_sha256, path, abandon_on_cancel=True)
        except FileNotFoundError:
            raise AttemptFailed(f"{path} does not exist") from None
        if digest != self.spec.sha256:
            raise AttemptFailed(f"sha256 is {digest[:16]}…, want {self.spec.sha256[:16]}…")
        return "sha256 matches"


_RUNNERS: dict[type, type[HealthCheckRunner]] = {
    CommandHealthCheck: CommandCheck,
    TcpHealthCheck: TcpCheck,
    ProcessHealthCheck: ProcessCheck,
    HttpHealthCheck: HttpCheck,
    FileHashHealthCheck: FileHashCheck,
}


def health_check_for(spec: HealthCheck, prefix: InstallPrefix) -> HealthCheckRunner:
    """The runner for one configured check."""
    runner = _RUNNERS.get(type(spec))
    if runner is None:
        raise HealthCheckError(f"no health check of type {type(spec).__name__}")
    return runner(spec, prefix)


async def run_health_checks(checks: Sequence[HealthCheck], prefix: InstallPrefix) -> HealthReport:
    """Run `checks` in order, stopping at the first that fails all its attempts."""
    runners = [health_check_for(spec, prefix) for spec in checks]
    results: list[CheckResult] = []
    for runner in runners:
        result = await runner.run()
        results.append(result)
        if not result.passed:
            break
    report = HealthReport(all(r.passed for r in results), results, len(runners))
    logger.info("health checks: %s", report.summary())
    return report


def _find_process(name: str) -> int | None:
    import psutil  # only for process checks: keeps it out of an idle agent

    for process in psutil.process_iter(["name"]):
        if process.info.get("name") == name:
            return int(process.pid)
    return None


def _sha256(path: Path) -> str:
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def _describe_os_error(exc: OSError) -> str:
    """`connection refused` rather than trio's `all attempts to connect … failed`."""
    group = exc.__cause__
    if exc.errno is None and isinstance(group, BaseExceptionGroup):
        inner = [e for e in group.exceptions if isinstance(e, OSError) and e.errno]
        if inner:
            exc = inner[0]
    if exc.errno and exc.errno > 0:
        return os.strerror(exc.errno).lower()
    return str(exc) or type(exc).__name__


def _describe_http_error(exc: httpx_types.HTTPError) -> str:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, OSError):
            return _describe_os_error(cause)
        cause = cause.__cause__ or cause.__context__
    return str(exc) or type(exc).__name__
