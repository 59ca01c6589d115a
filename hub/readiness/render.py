"""A readiness prediction as JSON and CSV (the table is drawn by hub/cli/readiness.py)."""

from __future__ import annotations

import csv
import io
import json

from hub.readiness.prediction import NOT_READY, READY, UNKNOWN, ReadinessReport

CSV_HEADERS = ("device_id", "name", "group", "status", "reason", "inventory_at")


def to_json(report: ReadinessReport) -> str:
    requires = report.requirements
    return json.dumps({
        "release": report.release, "group": report.group,
        "requirements": requires.model_dump(mode="json") if requires is not None else None,
        "counts": {status: report.count(status) for status in (READY, NOT_READY, UNKNOWN)},
        "devices": [device.as_dict() for device in report.devices],
    }, indent=2, sort_keys=True) + "\n"


def to_csv(report: ReadinessReport) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADERS)
    for device in report.devices:
        writer.writerow([device.device_id, device.name, device.group, device.status,
                         device.reason, device.inventory_at])
    return out.getvalue()
