"""The compatibility matrix as JSON and CSV (the table is drawn by hub/cli/compat.py)."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from hub.compat.matrix import METHOD, CompatMatrix

CSV_HEADERS = ("flagged", "attributes", "devices", "failures", "failure_rate", "installed",
               "failed", "reverted", "revert_failed", "rest_devices", "rest_failures",
               "rest_failure_rate", "p_value", "adjusted_p", "supported")


def to_dict(matrix: CompatMatrix, release: str, group: str | None) -> dict[str, Any]:
    settings = matrix.settings
    return {
        "release": release, "group": group, "method": METHOD,
        "settings": {"alpha": settings.alpha, "min_devices": settings.min_devices,
                     "min_failures": settings.min_failures},
        "reporting_devices": matrix.reporting, "failures": matrix.failures,
        "outcomes": matrix.outcomes, "tested": matrix.tested,
        "flagged": len(matrix.flagged),
        "without_inventory": list(matrix.without_inventory),
        "combinations": [c.as_dict() for c in matrix.combinations],
    }


def to_json(matrix: CompatMatrix, release: str, group: str | None) -> str:
    return json.dumps(to_dict(matrix, release, group), indent=2, sort_keys=True) + "\n"


def to_csv(matrix: CompatMatrix) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADERS)
    for c in matrix.combinations:
        writer.writerow([
            "yes" if c.flagged else "no", "; ".join(map(str, c.attributes)), len(c.devices),
            c.failures, f"{c.rate:.4f}", c.outcomes.get("installed", 0),
            c.outcomes.get("failed", 0), c.outcomes.get("reverted", 0),
            c.outcomes.get("revert-failed", 0), c.rest_devices, c.rest_failures,
            f"{c.rest_rate:.4f}", "" if c.p_value is None else f"{c.p_value:.6g}",
            "" if c.adjusted_p is None else f"{c.adjusted_p:.6g}",
            "yes" if c.supported else "no",
        ])
    return out.getvalue()
