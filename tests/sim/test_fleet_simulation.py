"""1,000 simulated devices against the real controller, signed documents and bucketing
(tests/sim/fleet_simulation.py says what is real and what is simulated), on trio's
MockClock: two simulated days run in a couple of seconds."""

import json

import pytest

from agent.rollout_selection import rollout_bucket
from tests.sim.fleet_simulation import FleetSpec, simulate

# The controller looks every 5 simulated minutes here (the hub looks every 2 s) to keep
# the default test run fast; tests/bench/bench_rollout_halting.py uses 1 minute.
FAST = {"controller_seconds": 300.0}


async def test_good_release_reaches_the_whole_fleet_by_itself(tmp_path, autojump_clock):
    outcome = await simulate(FleetSpec(failure_rate=0.0, seed=7, **FAST), tmp_path)
    assert outcome.state == "active" and outcome.stage_percent == 100
    assert outcome.received == outcome.reported == 1000 and outcome.failed == 0
    changes = [(row["actor"], row["action"], json.loads(row["detail"])["stage_percent"])
               for row in outcome.audit if row["actor"] != "simulation"]
    assert changes == [("controller", "rollout.advance", 25),
                       ("controller", "rollout.advance", 100)]


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_release_failing_on_30_percent_halts_inside_the_pilot_stage(
    tmp_path, autojump_clock, seed
):
    outcome = await simulate(FleetSpec(failure_rate=0.3, seed=seed, **FAST), tmp_path)
    assert outcome.halted and outcome.final_stage == 0
    pilot = {d for d in outcome.devices if rollout_bucket(d, outcome.release) < 2}
    assert set(outcome.receivers) <= pilot
    assert 0 < outcome.received <= len(pilot)
    [halt] = [row for row in outcome.audit if row["action"] == "rollout.halt"]
    assert halt["actor"] == "controller"
    assert "sequential test" in json.loads(halt["detail"])["reason"]


async def test_release_failing_everywhere_halts_after_the_first_two_results(
    tmp_path, autojump_clock
):
    outcome = await simulate(FleetSpec(failure_rate=1.0, seed=4, **FAST), tmp_path)
    assert outcome.halted and outcome.final_stage == 0
    assert outcome.failed == outcome.received
    # Two failures halt; devices already installing when the halt was signed finish.
    assert outcome.received <= 5
