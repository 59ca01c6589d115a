"""The audit log, filterable by actor, action (exactly, or `rollout.*` as a prefix),
subject and time range, newest first — the same query as the CLI (hub/audit/log.py).
Filters are GET parameters, so a filtered view is a link an auditor can keep; the JSON
at /console/api/audit takes the same ones."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from hub.audit.log import DEFAULT_LIMIT, MAX_LIMIT
from hub.audit.log import query as audit_query
from hub.console.auth import console_database, console_page, render
from hub.database import HubDatabase
from hub.errors import AuditQueryError

FILTERS = ("actor", "action", "subject", "since", "until")


def _filters(request: Request) -> tuple[dict[str, str], int]:
    """The filters given (empty ones left out) and the limit; AuditQueryError if bad."""
    given = {name: request.query_params.get(name, "").strip() for name in FILTERS}
    raw_limit = request.query_params.get("limit", "").strip() or str(DEFAULT_LIMIT)
    try:
        limit = int(raw_limit)
    except ValueError:
        raise AuditQueryError(f"limit {raw_limit[:20]!r}: not a whole number") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise AuditQueryError(f"limit {limit}: between 1 and {MAX_LIMIT}")
    return {name: value for name, value in given.items() if value}, limit


async def _entries(request: Request) -> tuple[dict[str, str], int, list[dict[str, Any]]]:
    filters, limit = _filters(request)

    def read(database: HubDatabase) -> list[dict[str, Any]]:
        return audit_query(database, limit=limit, **filters)

    entries = await console_database(request, read)
    return filters, limit, list(reversed(entries))  # newest first


@console_page()
async def audit_page(request: Request) -> Response:
    try:
        filters, limit, entries = await _entries(request)
    except AuditQueryError as exc:
        given = {name: request.query_params.get(name, "") for name in FILTERS}
        return render(request, "audit.html", status_code=400, error=str(exc), entries=[],
                      filters=given, limit=request.query_params.get("limit", ""))
    return render(request, "audit.html", error="", entries=entries,
                  filters={name: filters.get(name, "") for name in FILTERS}, limit=limit)


@console_page()
async def audit_api(request: Request) -> Response:
    try:
        filters, limit, entries = await _entries(request)
    except AuditQueryError as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    return JSONResponse({"filters": filters, "limit": limit, "entries": entries})


routes: list[BaseRoute] = [
    Route("/audit", audit_page, methods=["GET"]),
    Route("/api/audit", audit_api, methods=["GET"]),
]
