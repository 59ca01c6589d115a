"""The compliance report in the console: `/console/compliance/report?group=G&severity=S
&since=D` (GET parameters, so a filtered view is a link; `&page=N&per_page=M` page the
rows) and its downloads at `/console/compliance/report/{csv,json,html,pdf}?…` with the
same filters.

Nothing is computed here: hub/compliance/hub_report.py gathers the facts and computes
the report exactly as `meisitong-hub report compliance` does, and renders the very
bytes the CLI writes. The page shows the summary per group × severity, every exception
with its reason and the per-device rows, PAGE_ROWS at a time (or fewer, `per_page`) with
the count (the downloads have them all). A refused filter is a 400 naming the field.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import trio
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from agent.wire.release import Severity
from hub.compliance.facts import Filters
from hub.compliance.hub_report import (
    EXPORT_FORMATS,
    MEDIA_TYPES,
    export_name,
    hub_report,
    parse_filters,
    render_export,
)
from hub.compliance.render import hours
from hub.compliance.report import NOT_EXCEPTIONS, percent
from hub.config import HubConfig
from hub.console.auth import console_database, console_page, console_state, render
from hub.database import HubDatabase
from hub.errors import ComplianceInputError

PAGE_ROWS = 500
"""Per-device rows a page shows; the count says how many there are in all."""
FILTER_FIELDS = ("group", "severity", "since")


def _whole(request: Request, name: str, default: int, most: int) -> int:
    raw = request.query_params.get(name, "").strip() or str(default)
    if not raw.isdigit() or not 1 <= int(raw) <= most:
        raise ComplianceInputError(f"{name} {raw[:20]!r}: a whole number from 1 to {most}")
    return int(raw)


def _filters(request: Request) -> tuple[Filters, dict[str, str]]:
    """The query's filters (refused: ComplianceInputError naming the field) and their
    text, for the form and the download links."""
    given = {name: request.query_params.get(name, "").strip() for name in FILTER_FIELDS}
    return parse_filters(given["group"], given["severity"], given["since"], prefix=""), given


async def _report(request: Request, filters: Filters) -> dict[str, Any]:
    config_file = console_state(request).hub_dir.config_file

    def work(database: HubDatabase) -> dict[str, Any]:
        return hub_report(database, HubConfig.load(config_file), filters)

    return await console_database(request, work)


def _groups(database: HubDatabase) -> list[str]:
    return [str(row["grp"]) for row in database.query(
        "SELECT DISTINCT grp FROM devices WHERE status = 'accepted' ORDER BY grp")]


@console_page()
async def report_page(request: Request) -> Response:
    try:
        filters, given = _filters(request)
        page = _whole(request, "page", 1, 1_000_000)
        per_page = _whole(request, "per_page", PAGE_ROWS, PAGE_ROWS)
    except ComplianceInputError as exc:
        return render(request, "error.html", status_code=400, message=str(exc))
    report = await _report(request, filters)
    groups = await console_database(request, _groups)
    query = urlencode({name: value for name, value in given.items() if value})
    pages = max(1, -(-len(report["rows"]) // per_page))
    page = min(page, pages)
    first = (page - 1) * per_page
    paging = {**{k: v for k, v in given.items() if v},
              **({"per_page": str(per_page)} if per_page != PAGE_ROWS else {})}
    return render(request, "compliance_report.html", report=report, given=given,
                  severities=[s.value for s in Severity], groups=groups,
                  query=f"?{query}" if query else "", formats=EXPORT_FORMATS,
                  rows=report["rows"][first:first + per_page], first=first, page=page,
                  pages=pages,
                  page_link=lambda number: "?" + urlencode({**paging, "page": number}),
                  percent=percent, hours=hours, not_exceptions=NOT_EXCEPTIONS)


@console_page()
async def report_export(request: Request) -> Response:
    output_format = request.path_params["format"]
    try:
        filters, _ = _filters(request)
        if output_format not in EXPORT_FORMATS:
            raise ComplianceInputError(
                f"format {output_format[:20]!r}: use one of {', '.join(EXPORT_FORMATS)}")
    except ComplianceInputError as exc:
        return render(request, "error.html", status_code=400, message=str(exc))
    report = await _report(request, filters)
    body = await trio.to_thread.run_sync(render_export, report, output_format,
                                         limiter=console_state(request).exports)
    return Response(body, media_type=MEDIA_TYPES[output_format], headers={
        "Content-Disposition":
            f'attachment; filename="{export_name(report, output_format)}"'})


routes: list[BaseRoute] = [
    Route("/compliance/report", report_page, methods=["GET"]),
    Route("/compliance/report/{format}", report_export, methods=["GET"]),
]
