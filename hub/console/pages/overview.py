"""The fleet overview page and its JSON: devices per group and site, online, alerts
(hub/console/fleet_overview.py)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from hub.console.auth import console_database, console_page, console_state, render
from hub.console.fleet_overview import fleet_overview
from hub.database import HubDatabase


async def _overview(request: Request) -> dict[str, Any]:
    online_seconds = console_state(request).online_seconds

    def read(database: HubDatabase) -> dict[str, Any]:
        with database.read_transaction() as db:
            return fleet_overview(db, online_seconds=online_seconds)

    return await console_database(request, read)


@console_page()
async def overview_page(request: Request) -> Response:
    return render(request, "overview.html", overview=await _overview(request))


@console_page()
async def overview_api(request: Request) -> Response:
    return JSONResponse(await _overview(request))


routes: list[BaseRoute] = [
    Route("/overview", overview_page, methods=["GET"]),
    Route("/api/overview", overview_api, methods=["GET"]),
]
