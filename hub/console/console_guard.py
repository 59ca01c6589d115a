"""The console's gate, in front of every route of the console app (see hub/console/auth.py
for what it guarantees the pages): session required except for the login page and the
static assets, Origin and CSRF token checked on every change, security headers on every
response. In front of the routes rather than in each view, so a page that forgets a
decorator is still behind login and CSRF."""

from __future__ import annotations

import hmac
from urllib.parse import parse_qsl, quote

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hub.console.auth import refusal, wants_json
from hub.console.console_state import (
    CSRF_FIELD,
    CSRF_HEADER,
    PREFIX,
    SCOPE_CSRF_CHECKED,
    SCOPE_SESSION,
    SESSION_COOKIE,
    ConsoleState,
)
from hub.console.request_origin import is_https, same_origin
from hub.console.sessions import Session, find_session

MAX_BODY_BYTES = 64 * 1024
SAFE_METHODS = ("GET", "HEAD")
PUBLIC_PATHS = ("/login",)
STATIC_PREFIX = "/static/"

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)


class ConsoleGuard:
    def __init__(self, app: ASGIApp, state: ConsoleState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket":  # the console speaks no websocket
                await send({"type": "websocket.close", "code": 1008})
                return
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        relative = str(scope["path"]).removeprefix(str(scope.get("root_path", "")))
        if not relative.startswith("/"):
            relative = "/" + relative
        send = self._with_headers(send, request, static=relative.startswith(STATIC_PREFIX))
        public = relative in PUBLIC_PATHS or relative.startswith(STATIC_PREFIX)
        session = None if public else await self._session(request)
        if not public and session is None:
            await self._not_logged_in(request)(scope, receive, send)
            return
        scope[SCOPE_SESSION] = session
        if request.method in SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        if not same_origin(request, self.state.proxies):
            await refusal(request, 403, "cross-origin request refused (Origin is not this "
                          "console)")(scope, receive, send)
            return
        body = await self._body(receive)
        if body is None:
            await refusal(request, 413, f"request body larger than {MAX_BODY_BYTES} bytes")(
                scope, receive, send)
            return
        if session is not None:
            if not self._csrf_ok(request, body, session):
                await refusal(request, 403, "CSRF token missing or wrong")(scope, receive, send)
                return
            scope[SCOPE_CSRF_CHECKED] = True
        await self.app(scope, _replay(body, receive), send)

    async def _session(self, request: Request) -> Session | None:
        session_id = request.cookies.get(SESSION_COOKIE, "")
        if not session_id:
            return None
        state = self.state
        return await state.in_database(
            lambda db: find_session(db, session_id, state.policy, state.clock())
        )

    def _not_logged_in(self, request: Request) -> Response:
        if request.method in SAFE_METHODS and not wants_json(request):
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"{PREFIX}/login?next={quote(target, safe='/')}",
                                    status_code=303)
        return refusal(request, 401, "log in first")

    @staticmethod
    async def _body(receive: Receive) -> bytes | None:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    @staticmethod
    def _csrf_ok(request: Request, body: bytes, session: Session) -> bool:
        sent = request.headers.get(CSRF_HEADER)
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if sent is None and content_type == "application/x-www-form-urlencoded":
            fields = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
            sent = fields.get(CSRF_FIELD)
        return sent is not None and hmac.compare_digest(
            sent.encode(), session.csrf_token.encode()
        )

    def _with_headers(self, send: Send, request: Request, static: bool) -> Send:
        https = is_https(request, self.state.proxies)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["content-security-policy"] = CONTENT_SECURITY_POLICY
                headers["x-frame-options"] = "DENY"
                headers["x-content-type-options"] = "nosniff"
                headers["referrer-policy"] = "same-origin"
                headers["cache-control"] = "no-cache" if static else "no-store"
                if https:
                    headers["strict-transport-security"] = "max-age=31536000"
            await send(message)

        return send_with_headers


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body read already, then whatever else the client sends (its disconnect)."""
    sent = False

    async def replaying() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replaying
