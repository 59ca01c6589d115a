"""A 2,000-device fleet in six groups under their real policies (windows in five time
zones), 5 % offline for days, 2 % reverting, a critical release with a 72 h deadline
staged per group as an admin would (tests/sim/realistic_fleet.py says what is real).
tests/bench/bench_fleet_compliance.py runs the same at 10,000 devices and prints its
figures; this size keeps the default run to about ten seconds."""

import json
from collections import Counter
from datetime import timedelta

import pytest
import trio
import trio.testing

from hub.database import HubDatabase
from hub.rollouts.store import read_rollouts
from tests.sim.fleet_conditions import PUBLISHED, FleetMakeup
from tests.sim.realistic_fleet import RunOutcome, RunSpec, simulate

DEVICES = 2000


@pytest.fixture(scope="module")
def fleet_run(tmp_path_factory) -> RunOutcome:
    """One run for the module's tests (on its own MockClock: three days in seconds)."""
    return trio.run(simulate, RunSpec(makeup=FleetMakeup(devices=DEVICES, seed=0)),
                    tmp_path_factory.mktemp("fleet"),
                    clock=trio.testing.MockClock(autojump_threshold=0))


def test_critical_release_reaches_every_reachable_device_by_its_deadline(fleet_run):
    run = fleet_run
    database = HubDatabase(run.hub_dir.database)
    try:
        with database.transaction() as db:
            rollouts = read_rollouts(db, release=run.release)
        halts = database.query("SELECT detail FROM audit WHERE action = 'rollout.halt'")
    finally:
        database.close()
    assert [json.loads(row["detail"])["reason"] for row in halts] == []
    assert {(r.group, r.state.value, r.stage_percent) for r in rollouts} == {
        (group, "active", 100) for group in
        ("office-berlin", "office-newyork", "stores-tokyo", "kiosks-sydney", "servers-dc")}

    online_throughout = [d for d in run.conditions.values() if d.offline_from is None]
    for device in online_throughout:
        fate = run.fates[device.device_id]
        expected = ("not-ready" if device.not_ready else
                    "reverted" if device.fails else "installed")
        assert fate.outcome == expected, (device, fate)
        assert fate.finished_at is not None and fate.finished_at <= run.deadline, (device, fate)
    returned = [d for d in run.conditions.values()
                if d.offline_from is not None and d.back_at is not None]
    away = [d for d in run.conditions.values()
            if d.offline_from is not None and d.back_at is None]
    assert returned and away
    assert all(run.fates[d.device_id].outcome == "installed" for d in returned)
    assert all(run.fates[d.device_id].outcome == "" and run.fates[d.device_id].offline_since
               for d in away)
    outcomes = Counter(fate.outcome for fate in run.fates.values())
    assert "revert-failed" not in outcomes
    assert outcomes["reverted"] == sum(d.fails for d in run.conditions.values())


def test_the_hub_records_the_simulated_times_it_was_given(fleet_run):
    """publish_release(now=...) signs that publication time; ingest_result(now=...)
    stamps receipt and last contact with it: the report reads these, not the wall clock."""
    database = HubDatabase(fleet_run.hub_dir.database)
    try:
        [published] = database.query("SELECT published_at FROM releases")
        stamps = database.query("SELECT finished_at, received_at FROM results")
        seen = {row["device_id"]: row["last_seen"] for row in database.query(
            "SELECT device_id, last_seen FROM devices")}
    finally:
        database.close()
    assert published[0] == PUBLISHED.isoformat()
    assert stamps and all(row["finished_at"] == row["received_at"] for row in stamps)
    for device_id, fate in fleet_run.fates.items():
        if fate.offline_since is not None:
            assert seen[device_id] == fate.offline_since.isoformat()
        else:
            assert seen[device_id] > (fleet_run.ended_at - timedelta(minutes=16)).isoformat()
