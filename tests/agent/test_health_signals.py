"""Measuring a release's health signals on this machine (agent/health_signals.py): real
processes, the real /proc; each signal is None where the device cannot measure it."""

import shutil
import subprocess
import sys

import pytest

from agent import health_signals
from agent.wire.release import SignalsSpec


@pytest.fixture
def busy_process(tmp_path):
    """A CPU-bound process under a name nothing else on the machine has."""
    binary = tmp_path / "mst-sig-busy"
    shutil.copy(shutil.which("yes"), binary)
    proc = subprocess.Popen([str(binary)], stdout=subprocess.DEVNULL)
    try:
        yield binary.name
    finally:
        proc.kill()
        proc.wait()


async def test_cpu_and_memory_of_the_release_processes_are_measured(busy_process):
    spec = SignalsSpec(processes=[busy_process], window_seconds=1)
    window = await health_signals.measure_window(spec)
    assert window.seconds == pytest.approx(1.0, abs=0.5)
    assert window.cpu_percent is not None and window.cpu_percent > 20
    assert window.rss_bytes is not None and window.rss_bytes > 100_000


async def test_signals_of_a_release_with_no_processes_running_are_none():
    spec = SignalsSpec(processes=["mst-sig-absent"], window_seconds=1)
    window = await health_signals.measure_window(spec, seconds=0.1)
    assert window.cpu_percent is None and window.rss_bytes is None
    assert window.restarts is None  # no units declared


def test_oom_kills_come_from_vmstat_and_are_none_without_the_counter(tmp_path):
    vmstat = tmp_path / "vmstat"
    vmstat.write_text("nr_free_pages 100\noom_kill 7\n")
    assert health_signals.oom_kill_count(vmstat) == 7
    vmstat.write_text("nr_free_pages 100\n")
    assert health_signals.oom_kill_count(vmstat) is None
    assert health_signals.oom_kill_count(tmp_path / "absent") is None


def test_without_systemctl_or_journalctl_restarts_and_crashes_are_none(monkeypatch,
                                                                         tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert health_signals.restart_count(["app.service"]) is None
    assert health_signals.crash_count(0, 10) is None


def test_a_unit_systemd_does_not_know_gives_no_restart_count():
    assert health_signals.restart_count(["mst-sig-no-such-unit.service"]) is None


def test_importing_the_module_does_not_load_psutil():
    code = ("import sys, agent.health_signals; "
            "sys.exit(1 if 'psutil' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_release_manifests_refuse_unit_names_that_are_not_units():
    from pydantic import ValidationError
    with pytest.raises(ValidationError, match="not a systemd service"):
        SignalsSpec(units=["../../etc/passwd"])
    assert SignalsSpec(units=["app.service"]).window_seconds == 300
