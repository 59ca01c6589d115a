"""Halting on health-signal regressions (hub/rollouts/regression.py): the exact tests
against values computed by hand or by brute force, the minimum effect, and the
controller's halt with its figures."""

import itertools
import math
import random
from datetime import UTC, datetime, timedelta

import pytest

from agent.wire.health_signals import SignalWindow
from hub.rollouts.controller import RolloutEvidence, StageEvidence, Verdict, decide
from hub.rollouts.regression import (
    binomial_upper_tail,
    compare_signals,
    mann_whitney_greater,
    poisson_rate_test,
)
from hub.rollouts.rules import RolloutRules

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
HOUR = 3600.0


def window(crashes=None, seconds=HOUR, **levels):
    return SignalWindow(started_at=START.isoformat(), seconds=seconds, crashes=crashes,
                        **levels)


def test_binomial_tail_is_exact():
    assert binomial_upper_tail(8, 10, 0.5) == pytest.approx(56 / 1024, rel=1e-12)
    assert binomial_upper_tail(0, 10, 0.3) == 1.0
    assert binomial_upper_tail(11, 10, 0.3) == 0.0
    expected = sum(math.comb(40, i) * 0.2**i * 0.8 ** (40 - i) for i in range(15, 41))
    assert binomial_upper_tail(15, 40, 0.2) == pytest.approx(expected, rel=1e-10)


def test_poisson_rates_are_compared_given_their_exposures():
    # Equal counts, treatment watched half as long: twice the rate.
    p, ratio = poisson_rate_test(20, 10 * HOUR, 20, 20 * HOUR)
    assert ratio == pytest.approx(2.0)
    assert p == pytest.approx(binomial_upper_tail(20, 40, 1 / 3))
    assert 0.01 < p < 0.05  # 40 events are few: twice the rate is only just significant
    p_same, ratio_same = poisson_rate_test(20, 10 * HOUR, 40, 20 * HOUR)
    assert ratio_same == pytest.approx(1.0) and p_same > 0.4


def brute_force_u_tail(treatment, control):
    pooled = treatment + control
    u_observed = sum(t > c for t in treatment for c in control)
    hits = total = 0
    for chosen in itertools.combinations(range(len(pooled)), len(treatment)):
        rest = [pooled[i] for i in range(len(pooled)) if i not in chosen]
        u = sum(pooled[i] > c for i in chosen for c in rest)
        hits += u >= u_observed
        total += 1
    return hits / total


def test_mann_whitney_exact_distribution_matches_enumeration():
    rng = random.Random(3)
    for _ in range(5):
        treatment = [rng.random() for _ in range(5)]
        control = [rng.random() for _ in range(6)]
        p, _, method = mann_whitney_greater(treatment, control)
        assert method == "exact"
        assert p == pytest.approx(brute_force_u_tail(treatment, control), rel=1e-12)


def test_mann_whitney_with_ties_uses_permutations_and_is_reproducible():
    treatment, control = [3, 3, 4, 5, 5, 6], [1, 2, 3, 3, 4, 2]
    p, _, method = mann_whitney_greater(treatment, control)
    assert method == "permutation" and p < 0.05
    assert mann_whitney_greater(treatment, control)[0] == p
    reverse, _, _ = mann_whitney_greater(control, treatment)
    assert reverse > 0.9


def test_mann_whitney_large_samples_use_the_normal_approximation():
    rng = random.Random(5)
    treatment = [rng.gauss(1.2, 1) for _ in range(150)]
    control = [rng.gauss(1.0, 1) for _ in range(150)]
    p, _, method = mann_whitney_greater(treatment, control)
    assert method == "normal approximation" and 0 < p < 0.5


def test_doubled_crashes_regress_a_tiny_increase_at_high_counts_does_not():
    control = [window(crashes=3) for _ in range(12)]
    doubled = [window(crashes=6) for _ in range(12)]
    finding = compare_signals(doubled, control, alpha=0.01, min_ratio=1.5, min_devices=5)
    [crashes] = finding.comparisons
    assert finding.halts and crashes.ratio == pytest.approx(2.0) and crashes.p_value < 1e-3
    # 10 % more crashes over 1,000 devices each way is significant but below 1.5x.
    big_control = [window(crashes=100) for _ in range(1000)]
    slightly = [window(crashes=110) for _ in range(1000)]
    finding = compare_signals(slightly, big_control, 0.01, 1.5, 5)
    [crashes] = finding.comparisons
    assert crashes.p_value < 1e-10 and not finding.halts


def test_a_signal_needs_min_devices_on_each_side_and_both_sides_measured():
    control = [window(crashes=1) for _ in range(4)] + [window() for _ in range(10)]
    treatment = [window(crashes=9) for _ in range(10)]
    assert compare_signals(treatment, control, 0.01, 1.5, 5).comparisons == ()


def test_memory_growth_regresses_and_bonferroni_splits_alpha():
    rng = random.Random(1)
    control = [window(crashes=2, rss_bytes=int(rng.gauss(100e6, 5e6))) for _ in range(10)]
    treatment = [window(crashes=2, rss_bytes=int(rng.gauss(200e6, 5e6))) for _ in range(10)]
    finding = compare_signals(treatment, control, 0.01, 1.5, 5)
    assert finding.alpha_each == pytest.approx(0.005)
    [regression] = finding.regressions
    assert regression.signal == "rss_bytes" and regression.test.startswith("Mann-Whitney")


def evidence(treatment, control):
    return RolloutEvidence(stages=(2, 25, 100), current_stage=1, stage_started_at=START,
                           outcomes=(True,) * 13, stage=StageEvidence(12, 12, 0),
                           treatment_signals=tuple(treatment), control_signals=tuple(control))


def test_controller_halts_a_passing_stage_on_regressed_signals_with_the_figures():
    later = START + timedelta(hours=2)
    treatment = [window(crashes=6) for _ in range(13)]
    control = [window(crashes=3) for _ in range(13)]
    decision = decide(evidence(treatment, control), RolloutRules(), later)
    assert decision.verdict is Verdict.HALT
    assert "health checks passed but health signals regressed: crashes 2.00x" in decision.reason
    [figures] = decision.figures["regression_signals"]
    assert figures["signal"] == "crashes" and figures["treatment_devices"] == 13
    assert figures["p_value"] < 1e-3 and figures["ratio"] == 2.0
    good = decide(evidence(control, control), RolloutRules(), later)
    assert good.verdict is Verdict.ADVANCE and "regression_signals" in good.figures
    opted_out = decide(evidence(treatment, control), RolloutRules(regression_halt=False), later)
    assert opted_out.verdict is Verdict.ADVANCE


def test_rules_take_regression_thresholds_per_rollout():
    rules = RolloutRules(regression_alpha=0.001, regression_min_ratio=3.0)
    treatment = [window(crashes=6) for _ in range(13)]
    control = [window(crashes=3) for _ in range(13)]
    assert decide(evidence(treatment, control), rules,
                  START + timedelta(hours=2)).verdict is Verdict.ADVANCE
