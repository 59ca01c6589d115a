"""/console/login and /console/logout.

A login is throttled (hub/console/login_throttle.py) before its password is checked;
at most two passwords are checked at a time (argon2id holds 64 MiB per check: a flood
of logins queues instead of exhausting memory). Every checked login is audited, success
or failure; a refusal by the throttle is logged, not audited (it checks no password and
would let anyone fill the audit log at line rate). A login opens a new server-side
session: the cookie is HttpOnly, SameSite=Strict, limited to /console, and Secure
whenever the request came over HTTPS (served by the hub or, per a trusted proxy, to it).
The login form has no session yet, so only its Origin is checked (the
guard), which is what stops another site logging a browser into an account of its own.
"""

from __future__ import annotations

import logging
import math

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from hub.console.admin_accounts import NAME_PATTERN, verify_login
from hub.console.auth import console_state, current_session, form_fields, render
from hub.console.console_state import PREFIX, SESSION_COOKIE, ConsoleState
from hub.console.request_origin import client_address, is_https
from hub.console.sessions import close_session, find_session, forget_expired, open_session
from hub.database import HubDatabase

log = logging.getLogger(__name__)

LANDING = f"{PREFIX}/overview"


def safe_next(target: str | None) -> str:
    """Where to go after login: a console path, never another site (`//evil`)."""
    if (not target or not target.startswith(f"{PREFIX}/") or "//" in target
            or "\\" in target or target.startswith(f"{PREFIX}/login")):
        return LANDING
    return target


async def login_page(request: Request) -> Response:
    state = console_state(request)
    next_path = safe_next(request.query_params.get("next"))
    session_id = request.cookies.get(SESSION_COOKIE, "")
    if session_id:
        live = await state.in_database(
            lambda db: find_session(db, session_id, state.policy, state.clock())
        )
        if live is not None:
            return RedirectResponse(next_path, status_code=303)
    return render(request, "login.html", next_path=next_path, error="", name="")


async def login(request: Request) -> Response:
    state = console_state(request)
    fields = await form_fields(request)
    name = fields.get("name", "").strip().lower()[:64]
    password = fields.get("password", "")
    next_path = safe_next(fields.get("next"))
    address = client_address(request, state.proxies)

    def again(status: int, error: str, headers: dict[str, str] | None = None) -> Response:
        page = render(request, "login.html", status_code=status, next_path=next_path,
                      error=error, name=name)
        page.headers.update(headers or {})
        return page

    wait = state.throttle.wait_seconds(name, address)
    if wait > 0:
        log.warning("console login for %r from %s refused: throttled for %.0f s more",
                    name, address, wait)
        seconds = math.ceil(wait)
        return again(429, f"Too many failed logins: try again in {seconds} s.",
                     {"retry-after": str(seconds)})
    # Counted as a failure before the password is checked (a success clears it), with
    # no await between the check above and this count: attempts sent in parallel see
    # each other, so they cannot all pass while the first ones are still being checked.
    state.throttle.failed(name, address)
    async with state.password_checks:
        admin = await state.in_database(lambda db: verify_login(db, name, password))
    if admin is None:
        known = NAME_PATTERN.fullmatch(name) is not None
        subject = name if known else "(invalid name)"

        def record(database: HubDatabase) -> None:
            with database.transaction() as db:
                database.audit(db, f"admin:{subject}", "console.login-failed", subject,
                               address=address)

        await state.in_database(record)
        return again(401, "Wrong name or password.")
    state.throttle.succeeded(name, address)
    old = request.cookies.get(SESSION_COOKIE, "")
    session_id = await state.in_database(
        lambda db: _replace_session(db, old, admin.name, address, state)
    )
    response = RedirectResponse(next_path, status_code=303)
    response.set_cookie(
        SESSION_COOKIE, session_id, max_age=int(state.policy.lifetime_seconds), path=PREFIX,
        httponly=True, samesite="strict", secure=is_https(request, state.proxies),
    )
    return response


def _replace_session(
    db: HubDatabase, old: str, name: str, address: str, state: ConsoleState
) -> str:
    """A fresh session id at every login; the browser's previous one ends, and so do
    sessions of anyone that expired unused."""
    forget_expired(db, state.policy, state.clock())
    if old:
        previous = find_session(db, old, state.policy, state.clock())
        if previous is not None:
            close_session(db, previous, address)
    return open_session(db, name, address, state.clock())


async def logout(request: Request) -> Response:
    state = console_state(request)
    session = current_session(request)
    if session is not None:
        address = client_address(request, state.proxies)
        await state.in_database(lambda db: close_session(db, session, address))
    response = RedirectResponse(f"{PREFIX}/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path=PREFIX, httponly=True, samesite="strict",
                           secure=is_https(request, state.proxies))
    return response
