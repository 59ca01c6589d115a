"""Health signals travel in the device-signed result: a real hub and a real agent daemon
in this process install a release that declares `[signals]`; the agent measures a
window before the install and one after the health checks pass, and the hub's
controller evidence counts them (treatment: after, control: before)."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from hub.database import HubDatabase
from hub.rollouts.evidence import gather_progress
from hub.rollouts.store import read_rollout
from tests.e2e._crash_harness import command_check, publish, write_tar
from tests.fleet import start_agent, start_hub

SIGNALS = '[signals]\nprocesses = ["mst-sig-app"]\nwindow_seconds = 1\n'
FILE_TREE = '[install]\ntype = "file-tree"\nroot = "/opt/app"\n'


@pytest.fixture
def app_process(tmp_path):
    """The release's 'service': a CPU-bound process under its own name."""
    binary = tmp_path / "mst-sig-app"
    shutil.copy(shutil.which("yes"), binary)
    proc = subprocess.Popen([str(binary)], stdout=subprocess.DEVNULL)
    try:
        yield
    finally:
        proc.kill()
        proc.wait()


async def test_an_installed_release_reports_signals_before_and_after_signed(
    tmp_path, nursery, app_process
):
    hub = await start_hub(tmp_path, nursery)
    daemon, _ = await start_agent(hub, nursery, "a1", "127.0.0.2")
    payload = write_tar(tmp_path / "app.tar", {"VERSION": (b"2.0", 0o644)})
    target = publish(hub, "app", "2.0", payload,
                     FILE_TREE + command_check(["true"]) + SIGNALS)
    hub.rollout(target)
    await daemon.cycle()
    assert await daemon.deliver_results() == 0
    [row] = hub.results()
    assert row["outcome"] == "installed"
    signals = json.loads(row["body"])["record"]["signals"]
    for side in ("before", "after"):
        window = signals[side]
        assert window["seconds"] == pytest.approx(1.0, abs=0.6)
        assert window["cpu_percent"] > 10 and window["rss_bytes"] > 0
        assert window["restarts"] is None  # no units declared
    database = HubDatabase(hub.hub_dir.database)
    try:
        with database.transaction() as db:
            record = read_rollout(db, target, "lab")
            assert record is not None
            evidence = gather_progress(db, record).evidence
    finally:
        database.close()
    assert [w.cpu_percent for w in evidence.treatment_signals] == [signals["after"]["cpu_percent"]]
    assert [w.cpu_percent for w in evidence.control_signals] == [signals["before"]["cpu_percent"]]


async def test_a_reverted_release_reports_no_signals(tmp_path, nursery, app_process):
    hub = await start_hub(tmp_path, nursery)
    daemon, _ = await start_agent(hub, nursery, "a1", "127.0.0.2")
    payload = write_tar(tmp_path / "app.tar", {"VERSION": (b"2.0", 0o644)})
    target = publish(hub, "app", "2.0", payload,
                     FILE_TREE + command_check(["false"]) + SIGNALS)
    hub.rollout(target)
    await daemon.cycle()
    assert await daemon.deliver_results() == 0
    [row] = hub.results()
    assert row["outcome"] == "reverted"
    assert "signals" not in json.loads(row["body"])["record"]


async def test_a_device_outside_the_stage_sends_signed_control_windows_the_hub_keeps(
    tmp_path, nursery, app_process
):
    from hub.rollouts.changes import start_rollout
    from hub.rollouts.control_windows import control_windows
    from hub.rollouts.rules import RolloutPlan, RolloutRules

    hub = await start_hub(tmp_path, nursery)
    daemon, _ = await start_agent(hub, nursery, "a1", "127.0.0.2")
    payload = write_tar(tmp_path / "app.tar", {"VERSION": (b"2.0", 0o644)})
    target = publish(hub, "app", "2.0", payload,
                     FILE_TREE + command_check(["true"]) + SIGNALS)
    start_rollout(hub.hub_dir, target, "lab",
                  RolloutPlan(stages=(0, 100), rules=RolloutRules(automatic=False)))
    await daemon.cycle()
    assert hub.results() == []  # not in the 0 % stage: nothing installed
    assert list(daemon.control_signals.wanted) == [target]
    await daemon.control_signals.send_due()
    assert daemon.control_signals.sent == 1
    database = HubDatabase(hub.hub_dir.database)
    try:
        with database.transaction() as db:
            [window] = control_windows(db, target)[daemon.identity.device_id]
            record = read_rollout(db, target, "lab")
            assert record is not None
            evidence = gather_progress(db, record).evidence
    finally:
        database.close()
    assert window.cpu_percent is not None and window.cpu_percent > 10
    assert window.seconds == pytest.approx(1.0, abs=0.6)
    assert evidence.concurrent_signals == {daemon.identity.device_id: (window,)}
