"""The concurrent control (hub/rollouts/concurrent_control.py): windows of not-updated
devices over the treatment's period are the control when enough devices sent them, one
observation per device; otherwise the before-install stand-in, and the halt's figures
say which was used. Against other devices, devices' own base rates are allowed for
(hub/rollouts/regression.py, devices_differ)."""

import math
import random
from datetime import UTC, datetime, timedelta

from agent.wire.health_signals import SignalWindow
from hub.rollouts.concurrent_control import (
    CONCURRENT,
    STAND_IN,
    choose_control,
    merge_windows,
)
from hub.rollouts.controller import RolloutEvidence, StageEvidence, Verdict, decide
from hub.rollouts.regression import (
    between_device_spread,
    overdispersed_rate_test,
    poisson_rate_test,
)
from hub.rollouts.rules import RolloutRules

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
HOUR = 3600.0


def window(at_hours: float, crashes: int | None = 3, rss: int | None = 100) -> SignalWindow:
    return SignalWindow(started_at=(START + timedelta(hours=at_hours)).isoformat(),
                        seconds=HOUR, restarts=0, crashes=crashes, rss_bytes=rss)


def test_windows_whose_midpoint_is_in_the_treatments_span_make_the_control():
    treatment = [window(10 + i) for i in range(6)]  # span 10:00 .. 16:00 past START
    concurrent = {
        f"dev-{i:04d}": [window(2), window(9.4), window(12), window(15.6), window(20)]
        for i in range(5)
    }
    choice = choose_control(treatment, [window(0)] * 6, concurrent, min_devices=5)
    assert choice.kind == CONCURRENT and len(choice.windows) == 5
    # 9.4 (midpoint 9.9) and 15.6 (midpoint 16.1) are outside; 12 only is of the period.
    assert choice.figures["regression_concurrent_windows"] == 5
    assert all(w.seconds == HOUR for w in choice.windows)
    assert choice.figures["regression_control"] == CONCURRENT
    assert choice.figures["regression_period"] == [
        (START + timedelta(hours=10)).isoformat(), (START + timedelta(hours=16)).isoformat()]


def test_too_few_concurrent_devices_fall_back_to_the_stand_in_saying_why():
    treatment = [window(10 + i) for i in range(6)]
    stand_in = [window(0, crashes=1)] * 6
    concurrent = {f"dev-{i:04d}": [window(12)] for i in range(4)}
    concurrent["dev-late"] = [window(40)]  # not of the period
    choice = choose_control(treatment, stand_in, concurrent, min_devices=5)
    assert choice.kind == STAND_IN and choice.windows == tuple(stand_in)
    assert "4 not-updated devices" in choice.figures["regression_control_why"]
    assert choose_control([], stand_in, concurrent, 5).kind == STAND_IN


def test_a_devices_windows_merge_into_one_observation():
    merged = merge_windows([window(1, crashes=2, rss=100), window(2, crashes=5, rss=300),
                            window(3, crashes=1, rss=200)])
    assert (merged.seconds, merged.crashes, merged.rss_bytes) == (3 * HOUR, 8, 200)
    assert merged.started_at == window(1).started_at
    assert merge_windows([window(1), window(2, crashes=None)]).crashes is None
    week = merge_windows([window(i) for i in range(200)])
    assert week.seconds == 168 * HOUR  # no more exposure than a window may carry


def evidence(treatment, stand_in, concurrent):
    return RolloutEvidence(stages=(2, 25, 100), current_stage=1, stage_started_at=START,
                           outcomes=(True,) * 13, stage=StageEvidence(12, 12, 0),
                           treatment_signals=tuple(treatment), control_signals=tuple(stand_in),
                           concurrent_signals=concurrent)


def test_the_controller_judges_against_the_concurrent_control_and_says_so():
    later = START + timedelta(days=2)
    treatment = [window(10 + i % 4, crashes=6) for i in range(13)]
    # Their own before windows were on a bad day too (6 crashes/h): the stand-in hides it.
    stand_in = [window(5, crashes=6) for _ in range(13)]
    concurrent = {f"dev-{i:04d}": (window(11, crashes=3), window(12, crashes=3))
                  for i in range(20)}
    hidden = decide(evidence(treatment, stand_in, {}), RolloutRules(), later)
    assert hidden.verdict is Verdict.ADVANCE
    assert hidden.figures["regression_control"] == STAND_IN
    decision = decide(evidence(treatment, stand_in, concurrent), RolloutRules(), later)
    assert decision.verdict is Verdict.HALT
    assert "13 updated vs 20 not updated, same period" in decision.reason
    assert decision.figures["regression_control"] == CONCURRENT
    assert decision.figures["regression_concurrent_devices"] == 20
    [crashes] = [s for s in decision.figures["regression_signals"] if s["signal"] == "crashes"]
    assert crashes["control_devices"] == 20 and crashes["ratio"] == 2.0


def fleet_counts(rng, factor, treated, controls, control_hours):
    """Per-device (count, exposure): base rates 3/h varied 0.5-1.5x per device."""
    def poisson(mean):
        limit, count, product = math.exp(-mean), 0, rng.random()
        while product > limit:
            count += 1
            product *= rng.random()
        return count

    treatment = [(poisson(3 * rng.uniform(0.5, 1.5) * factor), HOUR) for _ in range(treated)]
    control = [(poisson(3 * rng.uniform(0.5, 1.5) * control_hours), HOUR * control_hours)
               for _ in range(controls)]
    return treatment, control


def halted_share(factor, treated, controls, fleets=400):
    """Fleets whose crash counts are significant at 0.01/3: (exact alone, with spread)."""
    rng = random.Random(7)
    exact = with_spread = 0
    for _ in range(fleets):
        t, c = fleet_counts(rng, factor, treated, controls, 10)
        p, _ = poisson_rate_test(sum(x for x, _ in t), sum(e for _, e in t),
                                 sum(x for x, _ in c), sum(e for _, e in c))
        p_spread, _ = overdispersed_rate_test(t, c)
        exact += p < 0.01 / 3
        with_spread += max(p, p_spread) < 0.01 / 3
    return exact / fleets, with_spread / fleets


def test_other_devices_base_rates_are_not_read_as_a_regression():
    # 40 updated devices against 6 others watched 10 h each (a final stage): devices'
    # own rates differing make the exact test alone flag 4 % of good fleets (0.33 %
    # meant); with the spread in the variance 1.2 % (1,000 fleets).
    exact, with_spread = halted_share(1.0, 40, 6)
    assert exact >= 0.025 and with_spread <= 0.02, (exact, with_spread)
    tau2 = between_device_spread([fleet_counts(random.Random(3), 1.0, 0, 400, 10)[1]])
    assert abs(tau2 - 1 / 12) < 0.03  # rates uniform 0.5-1.5x: variance 1/12
    assert between_device_spread([[(3, HOUR)] * 20]) == 0.0


def test_doubled_crashes_are_still_caught_against_other_devices():
    _exact, with_spread = halted_share(2.0, 10, 30)
    assert with_spread >= 0.85  # 0.91 of 1,000 fleets
