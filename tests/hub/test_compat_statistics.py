"""The compatibility matrix's statistics: Fisher's exact test against textbook values and
against brute-force enumeration, Holm's and Tarone's arithmetic, and the small-count
decisions the matrix makes (3 of 4 failing on one model flagged; 1 of 2 not)."""

from fractions import Fraction
from itertools import combinations
from math import comb

import pytest

from hub.compat.fisher import (
    fisher_greater,
    holm_adjusted,
    hypergeometric_upper_tail,
    smallest_attainable_p,
    tarone_kept,
)
from hub.compat.matrix import Attribute, CompatSettings, Observation, analyse


def test_fisher_matches_textbook_values():
    # Fisher's lady tasting tea (The Design of Experiments, 1935): 3 of 4 cups right,
    # one-sided p = 17/70 = 0.2429 (R: fisher.test(matrix(c(3,1,1,3),2), alt="greater")).
    assert fisher_greater(3, 1, 1, 3) == pytest.approx(17 / 70, rel=1e-15)
    assert fisher_greater(4, 0, 0, 4) == pytest.approx(1 / 70, rel=1e-15)
    # 8 of 9 vs 2 of 7, by hand: (C(10,8)·C(6,1) + C(10,9)·C(6,0)) / C(16,9) = 280/11440
    assert fisher_greater(8, 1, 2, 5) == pytest.approx(280 / 11440, rel=1e-15)
    # 3 of 4 failing vs 0 of 30: C(4,3)·C(30,0)/C(34,3) = 4/5984
    assert fisher_greater(3, 1, 0, 30) == pytest.approx(4 / 5984, rel=1e-15)
    assert fisher_greater(1, 1, 0, 30) == pytest.approx(2 / 32, rel=1e-15)


def brute_force_tail(failed_in, devices_in, failed_total, total):
    """Count, over every way of choosing which devices failed, those with at least
    `failed_in` failures among the first `devices_in` devices."""
    hits = sum(1 for failed in combinations(range(total), failed_total)
               if sum(1 for d in failed if d < devices_in) >= failed_in)
    return Fraction(hits, comb(total, failed_total))


@pytest.mark.parametrize("table", [(0, 3, 2, 5), (2, 1, 1, 6), (3, 0, 0, 9), (1, 4, 4, 1),
                                   (5, 5, 0, 2), (2, 2, 2, 2)])
def test_fisher_equals_brute_force_enumeration(table):
    a, b, c, d = table
    exact = brute_force_tail(a, a + b, a + c, a + b + c + d)
    assert fisher_greater(a, b, c, d) == pytest.approx(float(exact), rel=1e-12)


def test_tiny_p_values_stay_exact():
    # 50 of 50 failing vs 0 of 950: 1/C(1000,50), about 1e-85, no underflow to 0.
    p = fisher_greater(50, 0, 0, 950)
    assert p == pytest.approx(1 / comb(1000, 50), rel=1e-12) and p > 0


def test_impossible_tables_are_refused():
    with pytest.raises(ValueError, match="impossible 2x2 table"):
        hypergeometric_upper_tail(3, 2, 3, 10)


def test_holm_adjusts_in_step_down_order_and_stays_monotone():
    # m = 4: 0.01·4, 0.02·3, 0.03·2 → 0.06, and 0.04 stays at max(0.06, 0.04·1)
    assert holm_adjusted([0.03, 0.01, 0.04, 0.02]) == pytest.approx([0.06, 0.04, 0.06, 0.06])
    assert holm_adjusted([0.5, 0.9]) == [1.0, 1.0]


def test_tarone_keeps_only_hypotheses_that_could_reach_significance():
    # 1 failure in 40 devices: an attribute of 2 devices can at best reach p = 2/40.
    assert smallest_attainable_p(2, 1, 40) == pytest.approx(0.05)
    kept = tarone_kept([0.0001, 0.0001, 0.3, 0.5, 0.04], alpha=0.05)
    assert kept == [0, 1]  # K = 2: two hypotheses with minimum p ≤ 0.025
    assert tarone_kept([0.5, 0.6], alpha=0.05) == []


def fleet(bad_model_failures, bad_model_devices, rest=30, packages_per_device=0):
    observations = []
    for index in range(bad_model_devices):
        failed = index < bad_model_failures
        observations.append(Observation(
            f"laptop-{index}", "reverted" if failed else "installed", failed,
            frozenset({Attribute("os", "debian 12"), Attribute("model", "ThinkPad X13"),
                       Attribute("package", "fprintd")})))
    for index in range(rest):
        extra = {Attribute("package-version", f"pkg{index}-{n} 1.0") for n in
                 range(packages_per_device)}
        observations.append(Observation(
            f"desk-{index}", "installed", False,
            frozenset({Attribute("os", "debian 12"), Attribute("model", "OptiPlex 7090"),
                       *extra})))
    return analyse(observations)


def test_three_of_four_failing_on_one_model_is_flagged():
    matrix = fleet(3, 4)
    [flag] = matrix.flagged
    assert {str(a) for a in flag.attributes} == {"model=ThinkPad X13", "package=fprintd"}
    assert (flag.failures, len(flag.devices), flag.rest_failures, flag.rest_devices) == \
        (3, 4, 0, 30)
    assert flag.p_value == pytest.approx(4 / 5984)
    assert flag.adjusted_p <= 0.05
    # os=debian 12 is on every device: nothing to compare with, never tested
    [everyone] = [c for c in matrix.combinations if Attribute("os", "debian 12") in c.attributes]
    assert everyone.p_value is None and not everyone.flagged


def test_one_of_two_failing_is_not_flagged():
    matrix = fleet(1, 2)
    assert matrix.flagged == ()
    [laptops] = [c for c in matrix.combinations
                 if Attribute("model", "ThinkPad X13") in c.attributes]
    assert laptops.p_value == pytest.approx(2 / 32) and not laptops.supported


def test_thousands_of_untestable_package_versions_do_not_dilute_the_flag():
    # Every desktop has 100 package versions of its own: 3,000 hypotheses, none of which
    # could ever be significant (no failures there): Tarone keeps the one that can.
    matrix = fleet(3, 4, packages_per_device=100)
    assert matrix.tested == 1
    [flag] = matrix.flagged
    assert flag.adjusted_p == pytest.approx(4 / 5984)


def test_failures_spread_evenly_flag_nothing():
    observations = [Observation(f"d-{i}", "failed" if i % 5 == 0 else "installed",
                                i % 5 == 0,
                                frozenset({Attribute("model", f"m{i % 4}")}))
                    for i in range(80)]
    assert analyse(observations).flagged == ()


def test_settings_refuse_nonsense():
    with pytest.raises(ValueError, match="alpha"):
        CompatSettings(alpha=0)


def null_fleet(rng, devices=60, failure_rate=0.1):
    """Failures independent of every attribute: 6 models, 2 OS versions, 40 optional
    packages each on a random third of the devices."""
    observations = []
    for index in range(devices):
        attributes = {Attribute("model", f"m{rng.randrange(6)}"),
                      Attribute("os", f"debian {rng.choice((11, 12))}")}
        attributes |= {Attribute("package", f"p{n}") for n in range(40) if rng.random() < 1 / 3}
        failed = rng.random() < failure_rate
        observations.append(Observation(f"d-{index}", "failed" if failed else "installed",
                                        failed, frozenset(attributes)))
    return observations


def test_family_wise_false_flag_rate_stays_at_alpha_when_nothing_matters():
    # 1,000 seeded fleets where failing has nothing to do with any attribute: the share
    # of fleets with any flag at all is what Holm bounds by alpha = 5 % (under any
    # dependence). Measured 5.1 %: Tarone's trimming spends nearly all of the budget; the
    # bound allows two standard errors of 1,000 runs (1.4 %) above alpha, no more.
    import random

    runs = 1000
    flagged = sum(bool(analyse(null_fleet(random.Random(seed))).flagged)
                  for seed in range(runs))
    assert flagged / runs <= 0.05 + 2 * (0.05 * 0.95 / runs) ** 0.5


def test_a_real_effect_among_the_null_attributes_is_found():
    import random

    found = 0
    for seed in range(50):
        rng = random.Random(seed)
        observations = null_fleet(rng, failure_rate=0.03)
        # model m0 fails 70 % of the time
        observations = [o if Attribute("model", "m0") not in o.attributes or not
                        rng.random() < 0.7 else
                        Observation(o.device_id, "failed", True, o.attributes)
                        for o in observations]
        flags = analyse(observations).flagged
        found += any(Attribute("model", "m0") in c.attributes for c in flags)
    # About 10 devices per model: measured found in 95 % of 200 fleets.
    assert found >= 43
