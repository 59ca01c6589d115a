"""The compatibility matrix in the console: `/console/compat?release=NAME[@VERSION]
[&group=G]` and its JSON at `/console/api/compat?…` — what `meisitong-hub compat`
computes (hub/compat/), read in one read transaction in a worker thread. Without a
release the page lists the published releases that have results to cross."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from hub.compat.gather import observe, paused_gc
from hub.compat.matrix import METHOD, CompatSettings, analyse
from hub.compat.render import to_dict
from hub.console.auth import console_database, console_page, render
from hub.database import HubDatabase
from hub.errors import HubError
from hub.rollouts.changes import find_release

MAX_ROWS = 200
"""Rows the page shows (flagged first, then by p-value); the JSON has them all."""


def compat_data(database: HubDatabase, spec: str, group: str | None) -> dict[str, Any]:
    target = find_release(database, spec)["target"]
    with database.read_transaction() as db, paused_gc():
        observed = observe(db, target, group)
    with paused_gc():
        matrix = analyse(observed.observations, CompatSettings(), observed.without_inventory)
    return to_dict(matrix, target, group)


def releases_with_results(database: HubDatabase) -> list[dict[str, Any]]:
    rows = database.query(
        "SELECT r.name, r.version, r.target, count(DISTINCT s.device_id) AS devices "
        "FROM releases r JOIN results s ON s.release = r.target "
        "GROUP BY r.target ORDER BY r.name, r.version")
    return [dict(row) for row in rows]


def _query(request: Request) -> tuple[str, str | None]:
    spec = request.query_params.get("release", "").strip()[:300]
    group = request.query_params.get("group", "").strip()[:64] or None
    return spec, group


@console_page()
async def compat_page(request: Request) -> Response:
    spec, group = _query(request)
    if not spec:
        releases = await console_database(request, releases_with_results)
        return render(request, "compat.html", data=None, releases=releases, spec="",
                      group=group or "", method=METHOD, max_rows=MAX_ROWS)
    try:
        data = await console_database(request, lambda db: compat_data(db, spec, group))
    except HubError as exc:
        return render(request, "error.html", status_code=404, message=str(exc))
    return render(request, "compat.html", data=data, releases=[], spec=spec,
                  group=group or "", method=METHOD, max_rows=MAX_ROWS)


@console_page()
async def compat_api(request: Request) -> Response:
    spec, group = _query(request)
    if not spec:
        return JSONResponse({"releases": await console_database(request,
                                                                releases_with_results)})
    try:
        data = await console_database(request, lambda db: compat_data(db, spec, group))
    except HubError as exc:
        return JSONResponse({"error": str(exc)}, status_code=404)
    return JSONResponse(data)


routes: list[BaseRoute] = [
    Route("/compat", compat_page, methods=["GET"]),
    Route("/api/compat", compat_api, methods=["GET"]),
]
