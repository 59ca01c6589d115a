"""The compliance report over a realistic fleet run, and what the simulation says it
must contain.

The report is the hub's own: `hub.cli.report.compliance_report` (what `meisitong-hub
report compliance` runs: gather the facts from the database, compute the report) as of
the run's end, and `render` for the JSON export. Nothing here computes compliance; it
only derives, from what the simulation knows happened to each device, the status and
reason the report must give it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from hub.cli.report import compliance_report, render
from tests.sim.realistic_fleet import NOT_READY_REASON, REVERT_REASON, RunOutcome


@dataclass(frozen=True)
class TimedReport:
    report: dict[str, Any]
    seconds: float
    """Wall time of gathering and computing it."""
    json_seconds: float
    """Wall time of rendering the JSON export (one row per device and release)."""


def run_report(run: RunOutcome) -> TimedReport:
    started = time.perf_counter()
    report = compliance_report(str(run.hub_dir.root), None, None, None, now=run.ended_at)
    computed = time.perf_counter()
    render(report, "json")
    return TimedReport(report, computed - started, time.perf_counter() - computed)


def _iso(moment: Any) -> str:
    return str(moment.isoformat(timespec="seconds"))


def expected_statuses(run: RunOutcome) -> dict[str, tuple[str, str]]:
    """Device → (status, start of the reason) the report must give it for the release."""
    expected: dict[str, tuple[str, str]] = {}
    for device_id, fate in run.fates.items():
        if fate.offline_since is not None:
            expected[device_id] = ("offline", f"offline since {_iso(fate.offline_since)}")
        elif fate.outcome == "reverted":
            expected[device_id] = ("reverted",
                                   f"reverted at {_iso(fate.finished_at)}: {REVERT_REASON}")
        elif fate.outcome == "not-ready":
            expected[device_id] = ("not-ready",
                                   f"not-ready at {_iso(fate.finished_at)}: {NOT_READY_REASON}")
        elif fate.outcome == "installed":
            assert fate.finished_at is not None
            if fate.finished_at <= run.deadline:
                expected[device_id] = ("compliant", "")
            else:
                expected[device_id] = ("late", "installed ")
        else:
            expected[device_id] = ("?", f"the simulation lost track of {device_id}")
    return expected


def reachable_share(report: dict[str, Any]) -> float:
    """Compliant devices over in-scope devices that are not offline, whole fleet."""
    scoped = [row for row in report["rows"] if row["in_scope"]]
    reachable = [row for row in scoped if row["status"] != "offline"]
    return sum(row["status"] == "compliant" for row in reachable) / len(reachable)
