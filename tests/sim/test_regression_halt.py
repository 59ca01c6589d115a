"""Halting on health-signal regressions in the simulated fleet (tests/sim/
fleet_simulation.py): a release that doubles crash counts while every health check
passes is halted before it reaches the whole group, with tens of devices; a good one
reaches everyone across seeds. Devices not in the current stage send control windows
every 2 hours, so the halts are judged against the concurrent control; without them
the before-install stand-in still catches it."""

import json

from tests.sim.fleet_simulation import FleetSpec, simulate

DEVICES = 48
SIGNALS = {"crash_rate_per_hour": 3.0, "signal_window_hours": 1.0,
           "control_interval_hours": 2.0}
FAST = {"controller_seconds": 300.0}
STAGES = {"stages": (10, 30, 100)}  # at 2 % a group of 48 often has an empty first stage


def regression_halts(outcome):
    return [json.loads(row["detail"]) for row in outcome.audit
            if row["action"] == "rollout.halt"]


async def test_doubled_crashes_with_passing_health_checks_halt_before_everyone_has_it(
    tmp_path, autojump_clock
):
    stages = []
    for seed in range(6):
        outcome = await simulate(FleetSpec(devices=DEVICES, seed=seed, crash_factor=2.0,
                                           **SIGNALS, **STAGES, **FAST), tmp_path / str(seed))
        assert outcome.failed == 0  # no health check failed anywhere
        assert outcome.halted and outcome.received < DEVICES, seed
        [halt] = regression_halts(outcome)
        assert "health signals regressed: crashes" in halt["reason"]
        crashes = next(s for s in halt["evidence"]["regression_signals"]
                       if s["signal"] == "crashes")
        assert crashes["ratio"] >= 1.25
        assert crashes["p_value"] < halt["evidence"]["regression_alpha_each"]
        assert crashes["treatment_devices"] >= 5 and crashes["control_devices"] >= 5
        assert halt["evidence"]["regression_control"] == "concurrent"
        assert "not updated, same period" in halt["reason"]
        assert outcome.control_windows > 100
        stages.append(outcome.final_stage)
    # Caught at the 10 % or 30 % gate: 20 of seeds 0-19 (README).
    assert all(stage < 2 for stage in stages), stages


async def test_good_release_with_signals_reaches_everyone_across_seeds(
    tmp_path, autojump_clock
):
    halted = []
    for seed in range(6):  # 20 seeds: see the figures in the README
        outcome = await simulate(FleetSpec(devices=DEVICES, seed=100 + seed, **SIGNALS,
                                           **STAGES, **FAST), tmp_path / str(seed))
        if outcome.halted:
            halted.append((seed, regression_halts(outcome)))
        else:
            assert outcome.stage_percent == 100 and outcome.reported == DEVICES
    assert not halted, halted  # 0 of seeds 100-119 (README)


async def test_without_control_windows_the_stand_in_still_catches_doubled_crashes(
    tmp_path, autojump_clock
):
    for seed in range(2):
        outcome = await simulate(FleetSpec(devices=DEVICES, seed=seed, crash_factor=2.0,
                                           **(SIGNALS | {"control_interval_hours": None}),
                                           **STAGES, **FAST), tmp_path / str(seed))
        assert outcome.halted and outcome.control_windows == 0, seed
        [halt] = regression_halts(outcome)
        assert halt["evidence"]["regression_control"] == "before-install stand-in"
        assert "0 not-updated devices" in halt["evidence"]["regression_control_why"]
        assert "before their update" in halt["reason"]


async def test_an_opted_out_rollout_is_not_halted_by_signals(tmp_path, autojump_clock):
    outcome = await simulate(FleetSpec(devices=DEVICES, seed=1, crash_factor=2.0,
                                       rules={"regression_halt": False}, **SIGNALS, **STAGES,
                                       **FAST),
                             tmp_path)
    assert not outcome.halted and outcome.reported == DEVICES
