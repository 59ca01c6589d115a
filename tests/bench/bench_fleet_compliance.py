"""The fleet outcome of issue 13: 10,000 devices under their groups' real policies, 5 %
offline for days, 2 % reverting, a critical release with a 72 h deadline staged per
group (tests/sim/realistic_fleet.py), then the hub's compliance report over the hub
database it leaves. Baseline in the same run: the 2,000-device fleet the default test
runs, so the scaling column says how each part grows with the fleet.

Prints: the share of reachable devices compliant within the deadline (overall and per
group), every exception counted by status (each checked against what the simulation
knows, as the test does), the wall time of the simulation, of the hub's own parts in it
(controller passes, ingest_result, heartbeat writes), of one full controller pass at the
end, and of the report.

`python -m tests.bench.bench_fleet_compliance [DEVICES]` (default 10000); also run by
`make bench`.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import trio
from trio.testing import MockClock

from hub.rollouts.changes import apply_rollout_rules
from tests.sim.fleet_compliance import expected_statuses, reachable_share, run_report
from tests.sim.fleet_conditions import FleetMakeup
from tests.sim.realistic_fleet import RunSpec, simulate


def measure(devices: int) -> dict[str, float | str]:
    with tempfile.TemporaryDirectory() as workdir:
        run = trio.run(simulate, RunSpec(makeup=FleetMakeup(devices=devices)), Path(workdir),
                       clock=MockClock(autojump_threshold=0))
        started = time.perf_counter()
        apply_rollout_rules(run.hub_dir, run.ended_at)
        one_pass = time.perf_counter() - started
        timed = run_report(run)
    report = timed.report
    expected = expected_statuses(run)
    wrong = [row for row in report["rows"]
             if (row["status"], row["reason"][:len(expected[row["device_id"]][1])])
             != expected[row["device_id"]]]
    statuses = Counter(row["status"] for row in report["rows"])
    figures: dict[str, float | str] = {
        "devices": devices,
        "reachable compliant": f"{reachable_share(report):.2%}",
        "rows the simulation disagrees with": len(wrong),
        "statuses": ", ".join(f"{k} {v}" for k, v in sorted(statuses.items())),
        "simulation wall s": run.wall_seconds,
        "  set-up (hub, policies, enrolment) s": run.setup_seconds,
        "  controller passes s": run.timings.get("controller", 0.0),
        "  ingest_result s": run.timings.get("ingest_result", 0.0),
        "  ingest_result ms each": 1000 * run.timings.get("ingest_result", 0.0)
        / max(1, run.counts.get("ingest_result", 1)),
        "  heartbeat writes s": run.timings.get("heartbeat_write", 0.0),
        "  plan_install s": run.timings.get("plan_install", 0.0),
        "one controller pass (all rollouts) s": one_pass,
        "report (gather + compute) s": timed.seconds,
        "report JSON render s": timed.json_seconds,
    }
    for summary in report["summary"]:
        figures[f"group {summary['group']}"] = (
            f"{summary['devices']} devices, reachable {summary['reachable_share']:.2%}, "
            f"share {summary['share']:.2%}, mean {summary['mean_hours']:.1f} h, "
            f"p95 {summary['p95_hours']:.1f} h")
    return figures


def main() -> None:
    devices = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    baseline, fleet = measure(2000), measure(devices)
    print(f"{'':44} {'2,000':>12} {f'{devices:,}':>12} {'ratio':>7}")
    for key, value in fleet.items():
        base = baseline.get(key, "")
        if isinstance(value, float) and isinstance(base, float):
            ratio = f"{value / base:7.1f}" if base else ""
            print(f"{key:44} {base:12.3f} {value:12.3f} {ratio}")
        else:
            print(f"{key:44} {base!s:>12} {value!s:>12}" if len(str(value)) < 14
                  else f"{key}\n    2,000: {base}\n    {devices:,}: {value}")
    sys.exit(1 if fleet["rows the simulation disagrees with"] else 0)


if __name__ == "__main__":
    main()
