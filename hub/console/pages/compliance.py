"""Per-group compliance over time, as charts drawn on the server (hub/console/svg_chart.py)
from hub/compliance/over_time.py: at each point, the share of the group's in-scope
(device, release) pairs installed within their deadline. `?days=N` (1 to 366, default
30) sets the range; each chart has about 30 points."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from hub.compliance.gather import gather_facts
from hub.compliance.over_time import shares_over_time
from hub.console.auth import console_database, console_page, render
from hub.console.svg_chart import Series, line_chart
from hub.database import HubDatabase

DEFAULT_DAYS = 30
MAX_DAYS = 366
POINTS = 30


class RangeError(ValueError):
    pass


def _days(request: Request) -> int:
    raw = request.query_params.get("days", "").strip() or str(DEFAULT_DAYS)
    try:
        days = int(raw)
    except ValueError:
        raise RangeError(f"days {raw[:20]!r}: not a whole number") from None
    if not 1 <= days <= MAX_DAYS:
        raise RangeError(f"days {days}: between 1 and {MAX_DAYS}")
    return days


def group_shares(database: HubDatabase, days: int, now: datetime | None = None
                 ) -> dict[str, list[tuple[datetime, float | None]]]:
    """Every group with accepted devices -> its compliance share at each step."""
    facts = gather_facts(database, "", now or datetime.now(UTC))
    step = timedelta(days=days) / POINTS
    # From the facts' own time (a whole second), so the last point is that instant and
    # not one step earlier: `now` with a fraction would put it past facts.now.
    since = facts.now - step * POINTS
    groups = sorted({device.group for device in facts.devices})
    return {group: shares_over_time(facts, group, since, step) for group in groups}


def _series(points: list[tuple[datetime, float | None]]) -> list[tuple[datetime, float]]:
    return [(moment, share) for moment, share in points if share is not None]


async def _shares(request: Request) -> tuple[int, dict[str, Any]]:
    days = _days(request)
    return days, await console_database(request, lambda database: group_shares(database, days))


@console_page()
async def compliance_page(request: Request) -> Response:
    try:
        days, shares = await _shares(request)
    except RangeError as exc:
        return render(request, "error.html", status_code=400, message=str(exc))
    charts: list[tuple[str, Markup, float | None]] = []
    for group, points in shares.items():
        series = _series(points)
        chart = line_chart([Series(group, series)], title=f"{group}: compliant share",
                           chart_id=f"compliance-chart-{group}")
        charts.append((group, chart, series[-1][1] if series else None))
    every = line_chart([Series(group, _series(points)) for group, points in shares.items()],
                       title="All groups", chart_id="compliance-chart-all", width=880,
                       height=280)
    return render(request, "compliance.html", days=days, charts=charts, every=every)


@console_page()
async def compliance_api(request: Request) -> Response:
    try:
        days, shares = await _shares(request)
    except RangeError as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    return JSONResponse({
        "days": days,
        "groups": {group: [{"at": moment.isoformat(timespec="seconds"), "share": share}
                           for moment, share in points]
                   for group, points in shares.items()},
    })


routes: list[BaseRoute] = [
    Route("/compliance", compliance_page, methods=["GET"]),
    Route("/api/compliance", compliance_api, methods=["GET"]),
]
