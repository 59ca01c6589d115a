"""The rollout controller's rules, as pure functions: when a rollout waits, advances or
halts, and the sequential test's error rates measured over seeded random fleets."""

import random
from datetime import UTC, datetime, timedelta

import pytest

from hub.errors import RolloutError
from hub.rollouts.controller import (
    RolloutEvidence,
    StageEvidence,
    Verdict,
    decide,
    sequential_test,
)
from hub.rollouts.rules import HaltTest, RolloutPlan, RolloutRules

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
RULES = RolloutRules()  # the documented defaults: N=20, 98 %, 1 h soak, SPRT


def evidence(stage=StageEvidence(members=20), outcomes=(), current=0, stages=(2, 25, 100)):
    return RolloutEvidence(stages=stages, current_stage=current, stage_started_at=START,
                           outcomes=tuple(outcomes), stage=stage)


def test_defaults_are_the_documented_ones():
    assert RULES.min_results == 20
    assert RULES.success_threshold == 0.98
    assert RULES.soak_seconds == 3600
    assert RULES.halt_test is HaltTest.SPRT
    assert RULES.acceptable_failure_rate == pytest.approx(0.02)
    assert RULES.unacceptable_failure_rate == pytest.approx(0.10)
    assert RolloutPlan().stages == (2, 25, 100)


def test_two_failures_in_a_row_halt_at_once_one_does_not():
    assert not sequential_test([False], RULES).halts
    state = sequential_test([False, False], RULES)
    assert state.halts and state.failures == 2 and state.results == 2
    decision = decide(evidence(StageEvidence(20, 0, 2), [False, False]), RULES, START)
    assert decision.verdict is Verdict.HALT
    assert "sequential test: 2 failures in the first 2 results" in decision.reason


def test_successes_do_not_buy_credit_against_later_failures():
    # Floored at the acceptance boundary: after 500 successes, four failures in a row
    # halt, just as they would after 30.
    assert not sequential_test([True] * 500 + [False] * 3, RULES).halts
    assert sequential_test([True] * 500 + [False] * 4, RULES).halts
    assert sequential_test([True] * 30 + [False] * 4, RULES).halts


def test_a_stage_waits_for_min_results_then_for_its_soak():
    waiting = decide(evidence(StageEvidence(50, 19, 0), [True] * 19), RULES, START)
    assert waiting.verdict is Verdict.WAIT and "19 of 20 results" in waiting.reason
    soaking = decide(evidence(StageEvidence(50, 20, 0), [True] * 20), RULES,
                     START + timedelta(minutes=59))
    assert soaking.verdict is Verdict.WAIT
    assert soaking.recheck_at == START + timedelta(hours=1)


def test_a_stage_with_its_results_and_soak_advances():
    decision = decide(evidence(StageEvidence(50, 20, 0), [True] * 20), RULES,
                      START + timedelta(hours=1))
    assert decision.verdict is Verdict.ADVANCE and decision.to_stage == 1
    assert "widening to 25%" in decision.reason


def test_a_small_stage_needs_every_member_and_an_empty_one_its_soak_after_earlier_results():
    small = evidence(StageEvidence(members=3, successes=3))
    assert decide(small, RULES, START + timedelta(hours=1)).verdict is Verdict.ADVANCE
    empty_after_pilots = evidence(StageEvidence(members=0), [True, True])
    assert decide(empty_after_pilots, RULES, START).verdict is Verdict.WAIT
    assert decide(empty_after_pilots, RULES,
                  START + timedelta(hours=1)).verdict is Verdict.ADVANCE


def test_an_empty_stage_never_advances_on_zero_results():
    """An empty `--new-group` rollout went 2 -> 25 -> 100 % on soak time alone."""
    nothing = evidence(StageEvidence(members=0), [])
    for later in (timedelta(hours=1), timedelta(days=30)):
        decision = decide(nothing, RULES, START + later)
        assert decision.verdict is Verdict.WAIT
        assert "never advances on zero results" in decision.reason


def test_a_stage_below_threshold_at_its_gate_halts():
    # One failure in 20 is 95 %: not significant for the sequential test, but the stage
    # cannot pass a 98 % gate.
    outcomes = [True] * 19 + [False]
    assert not sequential_test(outcomes, RULES).halts
    decision = decide(evidence(StageEvidence(20, 19, 1), outcomes), RULES,
                      START + timedelta(hours=1))
    assert decision.verdict is Verdict.HALT
    assert "19 of 20 results succeeded (95.0%), below the 98.0% threshold" in decision.reason


def test_the_final_stage_never_advances():
    decision = decide(evidence(StageEvidence(900, 900, 0), [True] * 900, current=2), RULES,
                      START + timedelta(days=1))
    assert decision.verdict is Verdict.WAIT and "final stage" in decision.reason


def test_fixed_rule_halts_only_at_the_gate():
    fixed = RULES.model_copy(update={"halt_test": HaltTest.FIXED})
    failing = evidence(StageEvidence(20, 0, 5), [False] * 5)
    assert decide(failing, fixed, START + timedelta(hours=2)).verdict is Verdict.WAIT
    failed = evidence(StageEvidence(20, 0, 20), [False] * 20)
    assert decide(failed, fixed, START).verdict is Verdict.WAIT  # soaking
    assert decide(failed, fixed, START + timedelta(hours=1)).verdict is Verdict.HALT


def halt_rate(failure_rate, runs=300, results=1000):
    halted = 0
    for seed in range(runs):
        rng = random.Random(seed)
        halted += sequential_test([rng.random() >= failure_rate for _ in range(results)],
                                  RULES).halts
    return halted / runs


def test_sequential_test_error_rates_over_a_thousand_results():
    # Measured over 300 seeded fleets of 1,000 results each. Wald's α bounds one test;
    # watching 1,000 results with the floor is several tests in a row, so a release
    # failing at exactly the acceptable 2 % is halted more often than α (about 14 %).
    assert halt_rate(0.0) == 0
    assert halt_rate(0.01) < 0.05
    assert halt_rate(0.02) < 0.25
    assert halt_rate(0.05) > 0.95
    assert halt_rate(0.10) == 1


def test_rules_and_plans_refuse_bad_values_by_name():
    with pytest.raises(RolloutError, match="stages must increase: 25% follows 25%"):
        RolloutPlan.parse({"stages": [2, 25, 25]})
    with pytest.raises(RolloutError, match="stage 150% is outside 0..100"):
        RolloutPlan.parse({"stages": [2, 150]})
    with pytest.raises(RolloutError, match="success_threshold"):
        RolloutPlan.parse({"rules": {"success_threshold": 1.5}})
    with pytest.raises(RolloutError, match="min_results"):
        RolloutPlan.parse({"rules": {"min_results": 0}})
    with pytest.raises(RolloutError, match="not a valid group name"):
        RolloutPlan.parse({"pilot_groups": ["Bad Group"]})


def test_a_halt_never_prints_the_rate_as_the_threshold_it_fell_below():
    from hub.rollouts.controller import _percent_apart

    assert _percent_apart(146 / 149, 0.98) == "97.99%"
    assert _percent_apart(0.95, 0.98) == "95.0%"
