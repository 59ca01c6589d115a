"""The hub's compliance report for a set of filters, and its files: the one path both
`meisitong-hub report compliance` and the console's report page take, so a download from
the console is the very bytes the CLI writes for the same filters (and neither computes
compliance itself: gather_facts, then compute_report, then the renderers).

`parse_filters` names the field it refuses as the caller calls it: `--since` for the
CLI, `since` for the console's query string.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from agent.wire.release import Severity
from agent.wire.validation import NAME_PATTERN
from hub.compliance.exceptions import parse_instant
from hub.compliance.facts import Filters
from hub.compliance.gather import gather_facts
from hub.compliance.report import compute_report
from hub.config import HubConfig
from hub.database import HubDatabase
from hub.errors import ComplianceInputError

EXPORT_FORMATS = ("csv", "json", "html", "pdf")
MEDIA_TYPES = {"csv": "text/csv; charset=utf-8", "json": "application/json",
               "html": "text/html; charset=utf-8", "pdf": "application/pdf"}


def parse_filters(group: str | None, severity: str | None, since: str | None,
                  prefix: str = "--") -> Filters:
    """Filters from text; empty means "all". Refusals name `prefix` + the field."""
    group = (group or "").strip() or None
    severity = (severity or "").strip() or None
    since = (since or "").strip() or None
    if group is not None and not re.fullmatch(NAME_PATTERN, group):
        raise ComplianceInputError(
            f"{prefix}group {group[:70]!r}: not a group name (lower-case letters, digits, "
            "'.', '_' and '-', at most 63)")
    if severity is not None and severity not in {s.value for s in Severity}:
        raise ComplianceInputError(
            f"{prefix}severity {severity[:40]!r}: use one of "
            f"{', '.join(s.value for s in Severity)}")
    return Filters(group, severity,
                   parse_instant(since[:80], f"{prefix}since") if since else None)


def hub_report(database: HubDatabase, config: HubConfig, filters: Filters,
               now: datetime | None = None) -> dict[str, Any]:
    """The filtered report of this hub, as of `now`."""
    facts = gather_facts(database, config.public_url, now or datetime.now(UTC),
                         offline_after_seconds=config.metrics.online_within)
    return compute_report(facts, filters)


def render_export(report: dict[str, Any], output_format: str) -> bytes:
    """The report as a file: json and csv one row per device and release, html and pdf
    the printable evidence document."""
    from hub.compliance import document
    from hub.compliance import render as text

    if output_format == "json":
        return text.to_json(report).encode()
    if output_format == "csv":
        return text.to_csv(report).encode()
    if output_format == "html":
        return document.to_html(report).encode()
    if output_format == "pdf":
        return document.to_pdf(report)
    raise ComplianceInputError(
        f"format {output_format[:20]!r}: use one of {', '.join(EXPORT_FORMATS)}")


def export_name(report: dict[str, Any], output_format: str) -> str:
    """A download's file name: the report's time and filters, nothing a header could
    misread (every part is a group name, a severity or digits)."""
    filters = report["filters"]
    parts = ["compliance", str(report["generated_at"]).replace(":", "").replace("+0000", "Z")]
    parts += [str(filters[key]) for key in ("group", "severity") if filters[key]]
    if filters["since"]:
        parts.append("since-" + str(filters["since"])[:10])
    return re.sub(r"[^A-Za-z0-9._-]", "_", "-".join(parts)) + f".{output_format}"
