"""Halting on regressions that pass every health check — pure statistics, no I/O.

What is compared (hub/rollouts/evidence.py gathers it from device-signed results):

- treatment: the *after* windows of devices whose latest result for this rollout is
  `installed` (every stage so far): the new release running, its checks passed;
- control: chosen by concurrent_control.py — the control windows of not-updated devices
  of the audience over the treatment's period (agent/wire/control_signals.py), or, when
  too few devices sent those, the stand-in: the *before* windows of every device of the
  audience that reported for this rollout, each measured on the old version just
  before its install, while it was still one of the group's not-yet-updated devices.

Tests, one-sided (is the treatment worse?), each at alpha / (number of signals tested),
Bonferroni over the signals both sides measured:

- counts (restarts, OOM kills, crashes): two Poisson rates with exposure = window
  seconds. Given the total n = x_t + x_c, x_t is Binomial(n, E_t / (E_t + E_c)) when the
  rates are equal; p = P(X >= x_t), exact (the conditional test, Przyborowski and
  Wilenski 1940). Effect: the rate ratio (x_t/E_t) / (x_c/E_c).
  That test is exact when both sides share the devices' own base rates: the stand-in
  (the same devices before and after). The concurrent control's devices are others,
  and devices' base rates differ more than Poisson noise (a busy kiosk crashes more
  than an idle one), which that test reads as evidence (simulated: a good release
  halted in 2 of 20 fleets). So against other devices (`devices_differ`), p is also
  taken from a z-test whose variance carries that between-device spread: each device's
  count has variance mu + tau2 * mu^2 (mu = rate * its exposure), tau2 estimated by
  moments from both sides' devices (sum((x - r e)^2 - r e) / sum((r e)^2), at least
  0), rates compared under the pooled rate; the larger of the two p-values is kept.
- levels (CPU, memory of the release's processes): Mann-Whitney U, p = P(U >= u) for
  U = pairs (treatment > control) + half the ties, from the exact distribution of the
  permutation of ranks (a counting recursion) while there are no ties and n_t * n_c ≤
  400, else from 4,000 random permutations with a fixed seed (the same data gives the
  same p, so an audit entry can be recomputed), and beyond 200 devices from the normal
  approximation with the tie correction. Effect: the ratio of medians.

A signal halts only when it is significant *and* its effect is at least the rollout's
minimum (`regression_min_ratio`, 1.25 by default): many thousands of device-hours make a
2 % increase significant, and that alone must not halt a fleet.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from agent.wire.health_signals import COUNT_SIGNALS, LEVEL_SIGNALS, SignalWindow

EXACT_U_LIMIT = 400
PERMUTATIONS = 4000
PERMUTATION_SEED = 20260302
PERMUTATION_LIMIT = 200
"""Beyond this many devices, U's normal approximation (with the tie correction) is
accurate and permutations would cost the controller seconds per pass."""


@dataclass(frozen=True)
class SignalComparison:
    signal: str
    test: str
    treatment_devices: int
    control_devices: int
    treatment: float
    """Rate per device-hour (counts) or median (levels)."""
    control: float
    ratio: float
    p_value: float
    statistic: float

    def figures(self) -> dict[str, Any]:
        return {
            "signal": self.signal, "test": self.test,
            "treatment_devices": self.treatment_devices,
            "control_devices": self.control_devices,
            "treatment": round(self.treatment, 6), "control": round(self.control, 6),
            "ratio": round(self.ratio, 4) if math.isfinite(self.ratio) else "inf",
            "p_value": float(f"{self.p_value:.4g}"), "statistic": self.statistic,
        }


@dataclass(frozen=True)
class RegressionFinding:
    comparisons: tuple[SignalComparison, ...]
    alpha_each: float
    min_ratio: float

    @property
    def regressions(self) -> tuple[SignalComparison, ...]:
        return tuple(c for c in self.comparisons
                     if c.p_value < self.alpha_each and c.ratio >= self.min_ratio)

    @property
    def halts(self) -> bool:
        return bool(self.regressions)

    def figures(self) -> dict[str, Any]:
        return {
            "regression_alpha_each": float(f"{self.alpha_each:.4g}"),
            "regression_min_ratio": self.min_ratio,
            "regression_signals": [c.figures() for c in self.comparisons],
        }


def binomial_upper_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), exact (log-space terms, summed)."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    if p <= 0:
        return 0.0
    if p >= 1:
        return 1.0
    log_p, log_q = math.log(p), math.log1p(-p)
    terms = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1)
             + i * log_p + (n - i) * log_q for i in range(k, n + 1)]
    top = max(terms)
    return min(1.0, math.exp(top) * sum(math.exp(t - top) for t in terms))


def poisson_rate_test(x_t: int, e_t: float, x_c: int, e_c: float) -> tuple[float, float]:
    """(p, rate ratio) of the one-sided exact conditional test that the treatment's
    Poisson rate exceeds the control's, given exposures e_t and e_c."""
    n = x_t + x_c
    share = e_t / (e_t + e_c)
    p = binomial_upper_tail(x_t, n, share) if n else 1.0
    if x_c:
        return p, (x_t / e_t) / (x_c / e_c)
    return p, math.inf if x_t else 1.0


@lru_cache(maxsize=256)
def _u_counts(m: int, n: int) -> tuple[int, ...]:
    """How many rank arrangements give each U in 0..m*n (no ties): the recursion
    f(u; m, n) = f(u - n; m - 1, n) + f(u; m, n - 1)."""
    if m == 0 or n == 0:
        return (1,)
    with_top = _u_counts(m - 1, n)   # the largest value is a treatment one: +n pairs
    without = _u_counts(m, n - 1)
    counts = [0] * (m * n + 1)
    for u, ways in enumerate(without):
        counts[u] += ways
    for u, ways in enumerate(with_top):
        counts[u + n] += ways
    return tuple(counts)


def _midranks(values: Sequence[float]) -> list[float]:
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def _normal_upper_tail(u: float, ranks: Sequence[float], m: int, n: int) -> float:
    total = m + n
    tie_term = 0.0
    counts: dict[float, int] = {}
    for rank in ranks:
        counts[rank] = counts.get(rank, 0) + 1
    tie_term = sum(t ** 3 - t for t in counts.values())
    variance = m * n / 12 * ((total + 1) - tie_term / (total * (total - 1)))
    if variance <= 0:
        return 1.0
    z = (u - m * n / 2 - 0.5) / math.sqrt(variance)
    return 0.5 * math.erfc(z / math.sqrt(2))


def mann_whitney_greater(treatment: Sequence[float],
                         control: Sequence[float]) -> tuple[float, float, str]:
    """(p, U, method) for the one-sided test that treatment values tend to be larger."""
    return _mann_whitney(tuple(treatment), tuple(control))


@lru_cache(maxsize=64)
def _mann_whitney(treatment: tuple[float, ...],
                  control: tuple[float, ...]) -> tuple[float, float, str]:
    """Cached: the controller asks again at every pass, and the samples change only
    when a result arrives (permutations cost a few tenths of a second)."""
    m, n = len(treatment), len(control)
    pooled = list(treatment) + list(control)
    ranks = _midranks(pooled)
    rank_sum = sum(ranks[:m])
    u = rank_sum - m * (m + 1) / 2
    ties = len(set(pooled)) < len(pooled)
    if not ties and m * n <= EXACT_U_LIMIT:
        counts = _u_counts(m, n)
        at_least = sum(counts[math.ceil(u - 1e-9):])
        return at_least / math.comb(m + n, m), u, "exact"
    if m + n > PERMUTATION_LIMIT:
        return _normal_upper_tail(u, ranks, m, n), u, "normal approximation"
    rng = random.Random(PERMUTATION_SEED)
    indices = range(m + n)
    hits = sum(sum(ranks[i] for i in rng.sample(indices, m)) >= rank_sum - 1e-9
               for _ in range(PERMUTATIONS))
    return (hits + 1) / (PERMUTATIONS + 1), u, "permutation"


def between_device_spread(sides: Sequence[Sequence[tuple[int, float]]]) -> float:
    """tau2, the moment estimate of devices' relative spread of base rates (module
    docstring), from each side's (count, exposure) per device around its own rate."""
    numerator = denominator = 0.0
    for side in sides:
        exposure = sum(e for _, e in side)
        rate = sum(x for x, _ in side) / exposure if exposure else 0.0
        numerator += sum((x - rate * e) ** 2 - rate * e for x, e in side)
        denominator += sum((rate * e) ** 2 for _, e in side)
    return max(0.0, numerator / denominator) if denominator > 0 else 0.0


def overdispersed_rate_test(t: Sequence[tuple[int, float]],
                            c: Sequence[tuple[int, float]]) -> tuple[float, float]:
    """(p, tau2): one-sided z-test of the treatment's rate above the control's with the
    between-device spread in each side's variance (module docstring)."""
    tau2 = between_device_spread([t, c])
    e_t, e_c = sum(e for _, e in t), sum(e for _, e in c)
    pooled = (sum(x for x, _ in t) + sum(x for x, _ in c)) / (e_t + e_c)
    if pooled <= 0:
        return 1.0, tau2
    variance = sum((pooled * e_side + tau2 * pooled ** 2 * sum(e * e for _, e in side))
                   / e_side ** 2 for side, e_side in ((t, e_t), (c, e_c)))
    z = (sum(x for x, _ in t) / e_t - sum(x for x, _ in c) / e_c) / math.sqrt(variance)
    return 0.5 * math.erfc(z / math.sqrt(2)), tau2


def compare_signals(treatment: Sequence[SignalWindow], control: Sequence[SignalWindow],
                    alpha: float, min_ratio: float, min_devices: int,
                    devices_differ: bool = False) -> RegressionFinding:
    """Every signal measured by at least `min_devices` windows on each side, tested.
    `devices_differ`: the control is other devices than the treatment's (counts are
    then tested allowing for devices' own base rates, module docstring)."""
    comparisons: list[SignalComparison] = []
    for name in COUNT_SIGNALS:
        t = [(getattr(w, name), w.seconds) for w in treatment if getattr(w, name) is not None]
        c = [(getattr(w, name), w.seconds) for w in control if getattr(w, name) is not None]
        if len(t) < min_devices or len(c) < min_devices:
            continue
        x_t, e_t = sum(x for x, _ in t), sum(s for _, s in t)
        x_c, e_c = sum(x for x, _ in c), sum(s for _, s in c)
        p, ratio = poisson_rate_test(x_t, e_t, x_c, e_c)
        test = "exact conditional Poisson rates (binomial)"
        if devices_differ:
            p_spread, tau2 = overdispersed_rate_test(t, c)
            p = max(p, p_spread)
            test += f", and z with between-device spread (tau2={tau2:.3g})"
        comparisons.append(SignalComparison(
            name, test, len(t), len(c), x_t / e_t * 3600, x_c / e_c * 3600, ratio, p, x_t))
    for name in LEVEL_SIGNALS:
        tv = [float(getattr(w, name)) for w in treatment if getattr(w, name) is not None]
        cv = [float(getattr(w, name)) for w in control if getattr(w, name) is not None]
        if len(tv) < min_devices or len(cv) < min_devices:
            continue
        p, u, method = mann_whitney_greater(tv, cv)
        mt, mc = statistics.median(tv), statistics.median(cv)
        ratio = mt / mc if mc > 0 else (math.inf if mt > 0 else 1.0)
        comparisons.append(SignalComparison(
            name, f"Mann-Whitney U ({method})", len(tv), len(cv), mt, mc, ratio, p, u))
    alpha_each = alpha / max(1, len(comparisons))
    return RegressionFinding(tuple(comparisons), alpha_each, min_ratio)
