"""Fuzzing every decoder of outside input with 100,000+ inputs (issue 12, attack 3).

Targets (tests/agent/_wire_fuzz.py): the JSON wire models both sides speak, gossip
framing through model validation, record checks and the store, and the TOML loaders
(agent.toml, hub.toml, RELEASE.toml, group policies). Inputs: Hypothesis draws one
structured input per example and seeds a Random that mutates valid seed messages into
the rest of the batch (deep nesting, 5,000-digit numbers, flipped bytes, swapped
subtrees, lying frame lengths).

Baseline, measured on the same inputs in the same run: `json.loads` (for TOML inputs,
`tomllib.loads`) with any exception swallowed: the cost of the bare decoder, so the
ratio is what validation and bounds add. The figure that matters is the last column:
exceptions other than the declared format errors, which must be 0.

    python -m tests.bench.bench_wire_fuzz [TOTAL_INPUTS]
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import time
import tomllib
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.agent._wire_fuzz import (
    JSON_SEEDS,
    JSON_TARGETS,
    TOML_SEEDS,
    TOML_TARGETS,
    Findings,
    GossipReceiver,
    frame_batches,
    json_batches,
    toml_batches,
)

BATCH = 100


def _json_baseline(data: bytes) -> None:
    with contextlib.suppress(BaseException):  # the baseline swallows everything
        json.loads(data[4:] if data[:1] == b"\x00" else data)


def _toml_baseline(text: str) -> None:
    with contextlib.suppress(BaseException):
        tomllib.loads(text)


def fuzz_one(name: str, target: Callable[[Any], Any], strategy: st.SearchStrategy[list[Any]],
             baseline: Callable[[Any], None], inputs: int) -> dict[str, Any]:
    findings = Findings()
    timing = {"target": 0.0, "baseline": 0.0}

    @settings(max_examples=max(1, inputs // BATCH), deadline=None, database=None,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(strategy)
    def run(batch: list[Any]) -> None:
        for data in batch:
            started = time.perf_counter()
            findings.run(name, target, data)
            middle = time.perf_counter()
            baseline(data)
            timing["target"] += middle - started
            timing["baseline"] += time.perf_counter() - middle

    started = time.perf_counter()
    run()
    return {"name": name, "findings": findings, "wall": time.perf_counter() - started,
            **timing}


def main() -> None:
    total = int(sys.argv[1]) if len(sys.argv) > 1 else 112_000
    logging.disable(logging.CRITICAL)  # refused records log a warning each
    plans: list[tuple[str, Callable[[Any], Any], st.SearchStrategy[list[Any]], Any]] = []
    for name, (target, seed) in JSON_TARGETS.items():
        plans.append((name, target, json_batches(JSON_SEEDS[seed], BATCH), _json_baseline))
    for name, (toml_target, toml_seed) in TOML_TARGETS.items():
        plans.append((name, toml_target, toml_batches(TOML_SEEDS[toml_seed], BATCH),
                      _toml_baseline))
    plans.append(("gossip frame → store", GossipReceiver(), frame_batches(BATCH),
                  _json_baseline))
    per_target = total // len(plans)
    rows = [fuzz_one(name, target, strategy, baseline, per_target)
            for name, target, strategy, baseline in plans]

    print(f"{'target':34} {'inputs':>8} {'declared':>9} {'s':>7} {'inputs/s':>9} "
          f"{'vs decoder':>10} {'other exc.':>10}")
    for row in rows:
        found: Findings = row["findings"]
        rate = found.inputs / row["target"] if row["target"] else float("inf")
        ratio = row["target"] / row["baseline"] if row["baseline"] else float("inf")
        print(f"{row['name']:34} {found.inputs:8d} {found.declared:9d} {row['target']:7.2f} "
              f"{rate:9.0f} {ratio:9.1f}x {len(found.undeclared):10d}")
    inputs = sum(row["findings"].inputs for row in rows)
    undeclared = [item for row in rows for item in row["findings"].undeclared]
    target_s = sum(row["target"] for row in rows)
    baseline_s = sum(row["baseline"] for row in rows)
    wall = sum(row["wall"] for row in rows)
    print(f"\n{inputs} inputs in {wall:.1f} s wall ({target_s:.1f} s in the targets, "
          f"{baseline_s:.1f} s in the baseline decoders: {target_s / baseline_s:.1f}x; "
          f"the rest is generating inputs); exceptions other than the declared ones: "
          f"{len(undeclared)}")
    for name, error, data in undeclared[:20]:
        print(f"  {name}: {error}\n    input: {data!r}")
    if undeclared:
        sys.exit(1)


if __name__ == "__main__":
    main()
