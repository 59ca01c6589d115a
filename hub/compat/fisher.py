"""Fisher's exact test, one-sided, and the multiple-comparison correction the matrix uses.

Why this test: a compatibility problem shows first on a handful of devices (3 of the 4
devices of one model failing), where a chi-squared or z-test's normal approximation is
meaningless. Fisher's test conditions on the table's margins and computes the exact
probability, under "the attribute makes no difference", of at least this many failures
among the attribute's devices: the upper tail of the hypergeometric distribution,
computed here with exact integer binomial coefficients (math.comb) and one division at
the end, so a p-value of 1e-30 is as accurate as one of 0.5. No scipy: a few lines of
arithmetic do not justify a 100 MB dependency.

Why Holm's correction and not Benjamini-Hochberg: the hypotheses overlap heavily (a
hardware model implies a kernel flavour and a set of package versions), and Holm's
step-down controls the family-wise error rate under any dependence, while BH needs
independence or positive regression dependence to control the false discovery rate; and
a flag acts by itself (the controller holds devices on it), so what must be bounded is
the chance of *any* wrong flag, not their expected share.

Why Tarone's trimming first: with discrete tests most hypotheses cannot be significant
whatever happens (an attribute shared by 2 devices when the release had 1 failure can
never reach p < 0.05), yet plain Holm would count each of the thousands of package
versions against the budget. Tarone (1990) keeps only the hypotheses whose smallest
attainable p-value could pass: the smallest K such that at most K hypotheses have a
minimum attainable p-value ≤ α/K. That choice depends only on the margins, which the
conditional test holds fixed, so Holm over the kept set still bounds the family-wise
error rate by α (the first wrongly rejected null passes a threshold ≤ α/m₀ of the kept
set; the union bound over its true nulls gives α), and dropped hypotheses are never
flagged.
"""

from __future__ import annotations

from collections.abc import Sequence
from math import comb


def hypergeometric_upper_tail(failures_in: int, devices_in: int, failures_total: int,
                              devices_total: int) -> float:
    """P(X ≥ failures_in) for X ~ Hypergeometric(devices_total, failures_total,
    devices_in): the chance that `devices_in` devices drawn from `devices_total`, of which
    `failures_total` failed, include at least `failures_in` failures."""
    _check(failures_in, devices_in, failures_total, devices_total)
    top = min(devices_in, failures_total)
    if failures_in > top:
        return 0.0
    numerator = sum(comb(failures_total, x) * comb(devices_total - failures_total,
                                                    devices_in - x)
                    for x in range(failures_in, top + 1))
    return min(1.0, numerator / comb(devices_total, devices_in))


def fisher_greater(failed_in: int, succeeded_in: int, failed_rest: int,
                   succeeded_rest: int) -> float:
    """One-sided Fisher exact p-value that the failure rate of the first row (devices
    with the attribute) is higher than the second's (all other devices):

        |            | failed    | succeeded      |
        | attribute  | failed_in | succeeded_in   |
        | the rest   | failed_rest | succeeded_rest |
    """
    devices_in = failed_in + succeeded_in
    total = devices_in + failed_rest + succeeded_rest
    return hypergeometric_upper_tail(failed_in, devices_in, failed_in + failed_rest, total)


def smallest_attainable_p(devices_in: int, failures_total: int, devices_total: int) -> float:
    """The p-value of the most extreme table these margins allow (every failure that fits
    among the attribute's devices): no outcome can make the test more significant."""
    most = min(devices_in, failures_total)
    return hypergeometric_upper_tail(most, devices_in, failures_total, devices_total)


def tarone_kept(smallest_p: Sequence[float], alpha: float) -> list[int]:
    """Indices of the hypotheses Tarone's criterion keeps: for the smallest K ≥ 1 with
    #{i : smallest_p[i] ≤ α/K} ≤ K, those i."""
    ordered = sorted(smallest_p)
    for k in range(1, len(ordered) + 1):
        # count of smallest_p ≤ alpha / k
        count = _count_at_most(ordered, alpha / k)
        if count <= k:
            return [i for i, p in enumerate(smallest_p) if p <= alpha / k]
    return []


def holm_adjusted(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (same order as given): reject hypothesis i at
    level α when its adjusted p-value ≤ α."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [1.0] * m
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


def _count_at_most(ordered: Sequence[float], bound: float) -> int:
    low, high = 0, len(ordered)
    while low < high:
        middle = (low + high) // 2
        if ordered[middle] <= bound:
            low = middle + 1
        else:
            high = middle
    return low


def _check(failures_in: int, devices_in: int, failures_total: int, devices_total: int) -> None:
    if not (0 <= failures_in <= devices_in <= devices_total
            and 0 <= failures_total <= devices_total
            and failures_in <= failures_total
            and devices_in - failures_in <= devices_total - failures_total):
        raise ValueError(
            f"impossible 2x2 table: {failures_in} failures among {devices_in} devices, "
            f"{failures_total} among {devices_total} in all")
