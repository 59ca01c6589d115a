"""How long the hub takes to answer, per route: an ASGI wrapper around the whole app.

Labels are the route's template (`/api/v1/results`, `/metadata` for every metadata
file, `/console/devices/{device}`), never the raw path, and the method is one of the
standard ones or `other`: paths and methods are the client's to choose, so a scanner
requesting a million random paths adds no series (they are all `unmatched`). The
status label takes only the statuses the app itself sends.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from starlette.routing import BaseRoute, Match, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UNMATCHED = "unmatched"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

Observe = Callable[[str, str, str, float], None]
"""(method, route template, status, seconds) -> None."""


def route_template(routes: list[BaseRoute], scope: Scope) -> tuple[str, BaseRoute | None]:
    """The template of the top-level route `scope` goes to (a full match, else the first
    partial one, as Starlette's router picks), and that route."""
    partial: BaseRoute | None = None
    for route in routes:
        match, _child = route.matches(scope)
        if match is Match.FULL:
            return _path_of(route), route
        if match is Match.PARTIAL and partial is None:
            partial = route
    if partial is not None:
        return _path_of(partial), partial
    return UNMATCHED, None


def _path_of(route: BaseRoute) -> str:
    return str(getattr(route, "path", "") or UNMATCHED)


class RequestTiming:
    """Times each HTTP request from its arrival to the end of its response body."""

    def __init__(self, app: ASGIApp, routes: list[BaseRoute], observe: Observe) -> None:
        self.app = app
        self.routes = routes
        self.observe = observe

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        template, top = route_template(self.routes, scope)
        status = "500"  # what the client gets if the app fails before it answers

        async def noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = str(int(message["status"]))
            await send(message)

        try:
            await self.app(scope, receive, noting_status)
        finally:
            inner = scope.get("route")
            if isinstance(top, Mount) and isinstance(inner, BaseRoute) and inner is not top:
                template = f"{template.rstrip('/')}{_path_of(inner)}"
            method = str(scope.get("method", ""))
            self.observe(method if method in METHODS else "other", template, status,
                         time.perf_counter() - started)

