"""The report as CSV and JSON (one row per device and release) and as table rows for the
terminal. Every format renders the same computed report, so the filters that made it
apply to all of them."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from hub.compliance.report import ROW_FIELDS, percent


def hours(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


def to_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, sort_keys=True) + "\n"


def to_csv(report: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=ROW_FIELDS, extrasaction="ignore",
                            lineterminator="\n")
    writer.writeheader()
    for row in report["rows"]:
        writer.writerow(row)
    return out.getvalue()


def summary_cells(summary: dict[str, Any]) -> list[str]:
    return [summary["group"], summary["severity"], str(summary["in_scope"]),
            str(summary["compliant"]), percent(summary["share"]),
            percent(summary["reachable_share"]), hours(summary["mean_hours"]),
            hours(summary["p95_hours"])]


SUMMARY_HEADERS = ["group", "severity", "in scope", "compliant", "share", "reachable share",
                   "mean h", "p95 h"]
