"""Health checks against real processes, sockets, an HTTP server and files."""

import functools
import hashlib
import http.server
import shutil
import socket
import subprocess
import threading
import time
from typing import Any

import pytest
import trio

from agent.health_checks import CheckResult, HealthReport, run_health_checks
from agent.install_prefix import InstallPrefix
from agent.wire.release import (
    CommandHealthCheck,
    FileHashHealthCheck,
    HealthCheck,
    HttpHealthCheck,
    ProcessHealthCheck,
    TcpHealthCheck,
)

FAST: dict[str, Any] = {"timeout": 5.0, "retries": 0, "interval": 0.0}


@pytest.fixture
def prefix(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/app.conf").write_bytes(b"port = 8080\n")
    return InstallPrefix(tmp_path)


def sha256_of(data):
    return hashlib.sha256(data).hexdigest()


def free_port():
    """A port nothing listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def http_server():
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            status = 200 if self.path == "/healthz" else 503
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def probe_process(tmp_path):
    """A real process with a distinctive name (a copy of sleep)."""
    program = tmp_path / "mstprobe"
    shutil.copy(shutil.which("sleep") or "/bin/sleep", program)
    process = subprocess.Popen([str(program), "60"])
    yield "mstprobe"
    process.kill()
    process.wait()


async def run_one(spec, prefix):
    report = await run_health_checks([spec], prefix)
    return report.results[0]


# -- each kind, pass and fail ------------------------------------------------------------

async def test_command_check_passes_on_exit_zero_with_root_in_argv_and_env(prefix):
    spec = CommandHealthCheck(
        type="command",
        argv=["sh", "-c", 'test "$MEISITONG_ROOT" = "$1" && cat "$1/etc/app.conf"', "-", "{root}"],
        **FAST,
    )
    result = await run_one(spec, prefix)
    assert result.passed, result.detail
    assert result.detail == "exit code 0: port = 8080"


async def test_command_check_fails_with_exit_code_and_last_output_line(prefix):
    spec = CommandHealthCheck(
        type="command", argv=["sh", "-c", "echo starting; echo 'not ready' >&2; exit 2"],
        timeout=5, retries=1, interval=0,
    )
    result = await run_one(spec, prefix)
    assert (result.passed, result.attempts) == (False, 2)
    assert result.detail == "exit code 2: not ready"


async def test_command_check_that_cannot_start_fails(prefix):
    spec = CommandHealthCheck(type="command", argv=["/no/such/prog"], **FAST)
    result = await run_one(spec, prefix)
    assert not result.passed
    assert result.detail == "cannot run /no/such/prog: no such file or directory"


async def test_tcp_check_passes_against_a_listener(prefix):
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    try:
        result = await run_one(TcpHealthCheck(type="tcp", port=port, **FAST), prefix)
    finally:
        await listeners[0].aclose()
    assert result.passed
    assert result.target == f"127.0.0.1:{port}"


async def test_tcp_check_fails_with_connection_refused(prefix):
    port = free_port()
    spec = TcpHealthCheck(type="tcp", port=port, timeout=5, retries=2, interval=0.01)
    report = await run_health_checks([spec], prefix)
    assert not report.passed
    assert report.summary() == (
        f"0/1 checks passed; tcp 127.0.0.1:{port}: connection refused after 3 attempts"
    )


async def test_process_check_finds_a_running_process_by_name(prefix, probe_process):
    result = await run_one(ProcessHealthCheck(type="process", name=probe_process, **FAST), prefix)
    assert result.passed, result.detail
    assert result.detail.startswith("running as pid ")


async def test_process_check_fails_when_no_such_process_runs(prefix):
    spec = ProcessHealthCheck(type="process", name="no-such-process-xyz", **FAST)
    result = await run_one(spec, prefix)
    assert (result.passed, result.detail) == (False, "no such process running")


async def test_http_check_passes_on_the_expected_status(prefix, http_server):
    spec = HttpHealthCheck(type="http", url=f"{http_server}/healthz", **FAST)
    result = await run_one(spec, prefix)
    assert (result.passed, result.detail) == (True, "status 200")


async def test_http_check_fails_on_another_status(prefix, http_server):
    spec = HttpHealthCheck(type="http", url=f"{http_server}/broken", **FAST)
    result = await run_one(spec, prefix)
    assert (result.passed, result.detail) == (False, "status 503, want 200")


async def test_http_check_fails_when_nothing_listens(prefix):
    spec = HttpHealthCheck(type="http", url=f"http://127.0.0.1:{free_port()}/", **FAST)
    result = await run_one(spec, prefix)
    assert (result.passed, result.detail) == (False, "connection refused")


async def test_file_hash_check_passes_on_the_file_under_the_prefix(prefix):
    spec = FileHashHealthCheck(
        type="file-hash", path="/etc/app.conf", sha256=sha256_of(b"port = 8080\n"), **FAST
    )
    assert (await run_one(spec, prefix)).passed


async def test_file_hash_check_fails_on_other_content_or_a_missing_file(prefix):
    wrong = FileHashHealthCheck(type="file-hash", path="/etc/app.conf", sha256="0" * 64, **FAST)
    result = await run_one(wrong, prefix)
    assert not result.passed
    assert result.detail.startswith("sha256 is ")
    missing = FileHashHealthCheck(type="file-hash", path="/etc/nope", sha256="0" * 64, **FAST)
    result = await run_one(missing, prefix)
    assert result.detail == f"{prefix.path}/etc/nope does not exist"


# -- timeouts, retries, ordering ---------------------------------------------------------

async def test_hanging_health_check_fails_by_timeout(prefix):
    spec = CommandHealthCheck(
        type="command", argv=["sleep", "30"], timeout=0.3, retries=1, interval=0
    )
    started = time.monotonic()
    result = await run_one(spec, prefix)
    assert (result.passed, result.attempts) == (False, 2)
    assert result.detail == "timed out after 0.3 s"
    assert time.monotonic() - started < 5


async def test_hanging_http_server_fails_by_timeout_on_trios_clock(prefix, mock_clock):
    mock_clock.autojump_threshold = 0.1  # jump only once real I/O has gone quiet

    async def never_answer(stream):
        await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            functools.partial(trio.serve_tcp, never_answer, 0, host="127.0.0.1")
        )
        port = listeners[0].socket.getsockname()[1]
        spec = HttpHealthCheck(
            type="http", url=f"http://127.0.0.1:{port}/", timeout=10, retries=2, interval=5
        )
        started = time.monotonic()
        result = await run_one(spec, prefix)
        nursery.cancel_scope.cancel()
    assert (result.passed, result.attempts) == (False, 3)
    assert result.detail == "timed out after 10 s"
    assert result.seconds == pytest.approx(40, abs=0.5)  # 3 x 10 s + 2 x 5 s, on trio's clock
    assert time.monotonic() - started < 10


async def test_health_check_retries_until_pass(prefix, mock_clock):
    mock_clock.autojump_threshold = 0.1
    target = prefix.path / "etc/app.conf"
    spec = FileHashHealthCheck(
        type="file-hash", path="/etc/app.conf", sha256=sha256_of(b"ready"),
        timeout=1, retries=5, interval=2,
    )

    async def becomes_ready_after_five_seconds():
        await trio.sleep(5)
        target.write_bytes(b"ready")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(becomes_ready_after_five_seconds)
        result = await run_one(spec, prefix)
    assert (result.passed, result.attempts) == (True, 4)  # t = 0, 2, 4 fail; t = 6 passes
    assert result.seconds == pytest.approx(6, abs=0.5)


async def test_tcp_check_retries_until_a_late_listener_appears(prefix):
    port = free_port()
    spec = TcpHealthCheck(type="tcp", port=port, timeout=1, retries=50, interval=0.05)
    async with trio.open_nursery() as nursery:

        async def listen_late():
            await trio.sleep(0.3)
            listeners = await trio.open_tcp_listeners(port, host="127.0.0.1")
            await trio.sleep(5)
            await listeners[0].aclose()

        nursery.start_soon(listen_late)
        result = await run_one(spec, prefix)
        nursery.cancel_scope.cancel()
    assert result.passed
    assert result.attempts > 1


async def test_checks_stop_at_the_first_failure_and_the_summary_names_it(prefix):
    port = free_port()
    checks: list[HealthCheck] = [
        FileHashHealthCheck(
            type="file-hash", path="/etc/app.conf", sha256=sha256_of(b"port = 8080\n"), **FAST
        ),
        TcpHealthCheck(type="tcp", port=port, timeout=5, retries=2, interval=0),
        CommandHealthCheck(type="command", argv=["true"], **FAST),
    ]
    report = await run_health_checks(checks, prefix)
    assert not report.passed
    assert [(r.kind, r.passed) for r in report.results] == [("file-hash", True), ("tcp", False)]
    assert report.summary() == (
        f"1/3 checks passed; tcp 127.0.0.1:{port}: connection refused after 3 attempts;"
        " 1 not run"
    )


async def test_no_checks_pass(prefix):
    report = await run_health_checks([], prefix)
    assert report.passed
    assert report.summary() == "0/0 checks passed"


def test_summary_reads_as_one_line():
    report = HealthReport(
        passed=False,
        results=[
            CheckResult("command", "true", True, 1, "exit code 0", 0.1),
            CheckResult("http", "http://x/", True, 1, "status 200", 0.1),
            CheckResult("tcp", "127.0.0.1:8080", False, 3, "connection refused", 4.0),
        ],
        total=3,
    )
    assert report.summary() == (
        "2/3 checks passed; tcp 127.0.0.1:8080: connection refused after 3 attempts"
    )
