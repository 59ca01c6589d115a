"""How many devices receive a bad release before the rollout halts: the sequential test
(SPRT, the default) against the fixed-threshold rule, on the 1,000-device simulation
(tests/sim/fleet_simulation.py) with the default rules (stages 2,25,100; N=20; 98 %;
soak 1 h) and the controller looking every simulated minute.

The fixed rule is the baseline measured in the same run: it halts only at a stage's
gate — once the stage has min(N, its devices) results and its soak has passed — when
fewer than 98 % succeeded. The SPRT rule is the same gate plus Wald's test after every
result. The ratio column is SPRT / fixed (mean devices that received the release).

`python -m tests.bench.bench_rollout_halting [SEEDS]` (default 10 seeds); also run by
`make bench`. Prints two tables: devices with daily 2-hour maintenance windows at random
times of day (installs spread over a day, as policies make them), and devices that act
as soon as they are in the stage (no windows).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path

import trio
from trio.testing import MockClock

from hub.rollouts.rules import HaltTest
from tests.sim.fleet_simulation import FleetOutcome, FleetSpec, simulate

BAD_RATES = (0.05, 0.10, 0.30, 1.0)
GOOD_RATES = (0.0, 0.01, 0.02)
STAGE_NAMES = ("pilot", "broad", "full")


def run(spec: FleetSpec) -> FleetOutcome:
    with tempfile.TemporaryDirectory() as workdir:
        return trio.run(simulate, spec, Path(workdir), clock=MockClock(autojump_threshold=0))


def summarize(outcomes: list[FleetOutcome]) -> tuple[str, float]:
    received = [o.received for o in outcomes]
    mean = statistics.mean(received)
    where: dict[str, int] = {}
    for o in outcomes:
        key = f"halt@{STAGE_NAMES[o.final_stage]}" if o.halted else "no halt"
        where[key] = where.get(key, 0) + 1
    places = ", ".join(f"{n}× {k}" for k, n in sorted(where.items()))
    return f"{mean:7.1f} [{min(received):4d}–{max(received):4d}]  {places}", mean


def table(title: str, seeds: int, windowed: bool, rates: tuple[float, ...]) -> None:
    print(f"\n{title} ({seeds} seeds each; received = devices that downloaded the release)")
    print(f"{'failure':>8}  {'SPRT: mean [range], where it stopped':<52}"
          f"{'fixed: mean [range], where it stopped':<52}{'SPRT/fixed':>10}")
    for rate in rates:
        cells, means = [], []
        for test in (HaltTest.SPRT, HaltTest.FIXED):
            outcomes = [run(FleetSpec(failure_rate=rate, seed=seed, halt_test=test,
                                      windowed=windowed)) for seed in range(1, seeds + 1)]
            text, mean = summarize(outcomes)
            cells.append(text)
            means.append(mean)
        ratio = means[0] / means[1] if means[1] else float("nan")
        print(f"{rate:>8.0%}  {cells[0]:<52}{cells[1]:<52}{ratio:>10.2f}", flush=True)


def main() -> None:
    seeds = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    table("Daily 2-hour maintenance windows", seeds, True, BAD_RATES + GOOD_RATES)
    table("No maintenance windows", seeds, False, BAD_RATES)


if __name__ == "__main__":
    main()
