"""The console as one ASGI app, mounted by the hub at /console: login and logout, the
static assets, the pages (hub.console.pages.routes), all behind the guard."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from hub.config import HubConfig
from hub.console import pages
from hub.console.auth import console_page, current_admin, refusal
from hub.console.console_guard import ConsoleGuard
from hub.console.console_state import STATIC_DIR, ConsoleState
from hub.console.live import LiveRollouts
from hub.console.login import LANDING, login, login_page, logout
from hub.console.request_origin import TrustedProxies
from hub.console.sessions import SessionPolicy
from hub.hub_dir import HubDir


async def landing(request: Request) -> Response:
    return RedirectResponse(LANDING, status_code=303)


async def not_found(request: Request, exc: Exception) -> Response:
    """A missing page in the console's own shell (the guard let only sessions this far)."""
    status = getattr(exc, "status_code", 404)
    messages = {404: "No such page", 405: "Method not allowed here"}
    return refusal(request, status, messages.get(status, "Refused"))


@console_page()
async def session_info(request: Request) -> Response:
    """Who is logged in: the scripts' probe whether the session still lives."""
    admin = current_admin(request)
    return JSONResponse({"name": admin.name, "role": admin.role})


def console_app(hub_dir: HubDir, config: HubConfig, state: ConsoleState | None = None,
                live: LiveRollouts | None = None) -> Starlette:
    """`live` is the rollouts' live progress the serving hub runs (hub/console/live.py)."""
    state = state or ConsoleState(
        hub_dir=hub_dir,
        policy=SessionPolicy(config.console.session_idle, config.console.session_lifetime),
        proxies=TrustedProxies.parse(config.server.trusted_proxies),
        live=live,
        online_seconds=config.metrics.online_within,
    )
    routes: list[BaseRoute] = [
        Route("/", landing, methods=["GET"]),
        Route("/login", login_page, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/api/session", session_info, methods=["GET"]),
        Mount("/static", StaticFiles(directory=STATIC_DIR)),
        *pages.routes,
    ]
    app = Starlette(routes=routes, middleware=[Middleware(ConsoleGuard, state=state)],
                    exception_handlers={404: not_found, 405: not_found})
    app.state.console = state
    return app
