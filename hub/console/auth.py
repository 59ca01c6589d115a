"""The interface console pages are written against.

The console app (hub/console/console_app.py) is mounted at /console. Its guard
(hub/console/console_guard.py) runs before every route, so a page cannot forget it:

- every path except /console/login and /console/static/* needs a live session: without
  one a page request is redirected (303) to /console/login?next=PATH, and a request
  under /console/api/ (or one that accepts only JSON or an event stream) is answered
  401 `{"error": ...}`;
- every request whose method is not GET or HEAD is a change: its Origin (or Referer)
  must be the console's own origin, and it must carry the session's CSRF token, in the
  `X-CSRF-Token` header (fetch; static/console.js adds it) or as the `csrf_token` field
  of an application/x-www-form-urlencoded body (forms; base.html's `csrf_field()`
  macro). Otherwise 403. Bodies over 64 KiB are refused (413);
- every response gets the security headers: a CSP of 'self' only (no inline script
  or style, not even a style="" attribute: use classes from static/console.css, SVG
  attributes or a script file under static/), frame-ancestors 'none', nosniff,
  Referrer-Policy same-origin, and Cache-Control no-store (static assets excepted).

What a page module uses (add routes to `hub.console.pages.routes`, paths relative to
/console, e.g. `Route("/overview", overview)` and `Route("/api/rollouts", rollouts)`):

    @console_page()                    # GET view, any role (auditor and admin)
    async def overview(request): ...
    @console_page(role="admin")        # GET view for admins only (403 for auditors)
    @console_action()                  # a change: admin role (403 for an auditor),
    async def pause(request): ...      #   CSRF and Origin already checked by the guard
    current_admin(request) -> Admin    # Admin(name, role), .may("admin")
    audit_actor(request) -> str        # "admin:NAME", the actor for database.audit
    await console_database(request, work)   # work(HubDatabase) in a worker thread
    await form_fields(request) -> dict[str, str]   # a urlencoded form body's fields
    render(request, "page.html", status_code=200, **context) -> HTMLResponse

Templates live in hub/console/templates and extend "base.html" (blocks `title`,
`content`, `scripts`); `render` gives them `admin`, `csrf_token`, `nav` (label, path)
pairs, `active` (the request path) and whatever context is passed. Static files are
under hub/console/static, served at /console/static/. A long-lived response (server-sent
events) is authorized when it starts; it should end once `await session_alive(request)`
turns False (logout, password change, expiry), checking every few seconds.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from hub.console.admin_accounts import Admin
from hub.console.console_state import (
    PREFIX,
    SCOPE_CSRF_CHECKED,
    SCOPE_SESSION,
    SESSION_COOKIE,
    ConsoleState,
)
from hub.console.sessions import Session, find_session
from hub.database import HubDatabase

__all__ = [
    "NAV", "Admin", "audit_actor", "console_action", "console_database", "console_page",
    "current_admin", "form_fields", "render", "session_alive",
]

T = TypeVar("T")
View = Callable[[Request], Awaitable[Response]]

NAV: tuple[tuple[str, str], ...] = (
    ("Overview", f"{PREFIX}/overview"),
    ("Rollouts", f"{PREFIX}/rollouts"),
    ("Compliance", f"{PREFIX}/compliance"),
    ("Compatibility", f"{PREFIX}/compat"),
    ("Devices", f"{PREFIX}/devices"),
    ("Audit", f"{PREFIX}/audit"),
)


def console_state(request: Request) -> ConsoleState:
    state: ConsoleState = request.app.state.console
    return state


def current_session(request: Request) -> Session | None:
    session: Session | None = request.scope.get(SCOPE_SESSION)
    return session


def current_admin(request: Request) -> Admin:
    """The logged-in account. Only in a view behind console_page or console_action."""
    session = current_session(request)
    if session is None:
        raise LookupError("current_admin outside a console view: no session")
    return Admin(session.admin_name, session.role)


def audit_actor(request: Request) -> str:
    """The audit log's actor for a change made from the console."""
    return f"admin:{current_admin(request).name}"


def wants_json(request: Request) -> bool:
    relative = request.url.path.removeprefix(PREFIX)
    accept = request.headers.get("accept", "")
    return relative.startswith("/api/") or (
        "text/html" not in accept
        and ("application/json" in accept or "text/event-stream" in accept)
    )


def refusal(request: Request, status_code: int, message: str) -> Response:
    """`{"error": message}` for the API, the error page for a page request."""
    if wants_json(request):
        return JSONResponse({"error": message}, status_code=status_code)
    return render(request, "error.html", status_code=status_code, message=message)


def console_page(role: str = "auditor") -> Callable[[View], View]:
    """A view any account with `role` (or a stronger one) may see; 403 for the rest."""

    def decorate(view: View) -> View:
        @functools.wraps(view)
        async def guarded(request: Request) -> Response:
            session = current_session(request)
            if session is None:
                return refusal(request, 401, "log in first")
            if not Admin(session.admin_name, session.role).may(role):
                return refusal(request, 403, f"this needs the {role} role")
            return await view(request)

        return guarded

    return decorate


def console_action(role: str = "admin") -> Callable[[View], View]:
    """A change: needs `role` (an auditor gets 403) and a request the guard checked for
    CSRF token and Origin (a GET is refused 405: changes are never GETs)."""

    def decorate(view: View) -> View:
        @console_page(role)
        @functools.wraps(view)
        async def guarded(request: Request) -> Response:
            if request.method in ("GET", "HEAD"):
                return refusal(request, 405, "a change needs POST")
            if not request.scope.get(SCOPE_CSRF_CHECKED):
                return refusal(request, 403, "CSRF token missing or wrong")
            return await view(request)

        return guarded

    return decorate


async def console_database(request: Request, work: Callable[[HubDatabase], T]) -> T:
    """`work` on a hub database connection of its own, in a worker thread."""
    return await console_state(request).in_database(work)


async def form_fields(request: Request) -> dict[str, str]:
    """The fields of an application/x-www-form-urlencoded body (first value of each)."""
    fields: dict[str, str] = {}
    for key, value in parse_qsl((await request.body()).decode("utf-8", "replace"),
                                keep_blank_values=True):
        fields.setdefault(key, value)
    return fields


async def session_alive(request: Request) -> bool:
    """Whether the request's session is still live (for long-lived responses)."""
    state = console_state(request)
    session_id = request.cookies.get(SESSION_COOKIE, "")
    found = await state.in_database(
        lambda db: find_session(db, session_id, state.policy, state.clock())
    )
    return found is not None


def render(
    request: Request, template: str, status_code: int = 200, **context: Any
) -> HTMLResponse:
    """`template` rendered with admin, csrf_token, nav, active and `context`."""
    session = current_session(request)
    admin = Admin(session.admin_name, session.role) if session else None
    page = console_state(request).templates.get_template(template).render(
        admin=admin,
        csrf_token=session.csrf_token if session else "",
        nav=NAV,
        active=request.url.path,
        **context,
    )
    return HTMLResponse(page, status_code=status_code)
