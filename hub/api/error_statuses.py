"""Which error is which HTTP status, in one table every route of the hub's API uses.

A 4xx tells an agent its request is refused for good: it drops the result record
(agent/hub_client.py). So only errors that are the request's own fault are a 4xx: a
body that is not the format (400), a signature, token or proof that does not verify
(403), a device the hub has not enrolled (404), an inventory diff whose base the hub
lacks (409) or that does not give the digest it claims (422), a control window the hub
does not keep (422), a body over its route's limit (413).
Anything else (a HubError that is the server's own fault, such as a missing CA key, a
full disk, a locked or unwritable database, a bug) is a 500, which agents retry later;
its traceback goes to the hub's log, not to the client.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Sequence

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from agent.errors import SignatureError, WireFormatError
from hub.errors import (
    BodyTooLargeError,
    ControlWindowRefusedError,
    EnrollmentRefusedError,
    InventoryBaseMissingError,
    InventoryDigestMismatchError,
    UnknownDeviceError,
)

log = logging.getLogger(__name__)

REQUEST_FAULTS: tuple[tuple[type[Exception], int], ...] = (
    (BodyTooLargeError, 413),
    (UnknownDeviceError, 404),
    (SignatureError, 403),
    (EnrollmentRefusedError, 403),
    (InventoryBaseMissingError, 409),
    (InventoryDigestMismatchError, 422),
    (ControlWindowRefusedError, 422),
    (WireFormatError, 400),
)
"""Error type -> status for what the request is to blame for, first match wins."""

SERVER_FAULT = 500

Endpoint = Callable[[Request], Awaitable[Response]]


def status_of(exc: BaseException) -> int:
    """The status `exc` is answered with: its REQUEST_FAULTS entry, else 500."""
    for error_type, status in REQUEST_FAULTS:
        if isinstance(exc, error_type):
            return status
    return SERVER_FAULT


def error_response(request: Request, exc: Exception) -> Response:
    """`{"error": ...}` with the status of `exc`, logged. A refusal carries its message
    (it names what was wrong); a server fault names only the route and the error type
    (a path or a database detail is the admin's business, in the log)."""
    status = status_of(exc)
    path = request.url.path  # never the query: the tracker's carries the seeder's secret
    if status == SERVER_FAULT:
        log.error("%s %s failed on the hub's side (answered %d)", request.method, path, status,
                  exc_info=exc)
        return JSONResponse(
            {"error": f"the hub failed handling {path} ({type(exc).__name__}); try again later"},
            status_code=status,
        )
    level = logging.WARNING if status == 403 else logging.INFO
    log.log(level, "%s refused from %s (HTTP %d): %s", path, request.client, status, exc)
    return JSONResponse({"error": str(exc)}, status_code=status)


def answering_errors(endpoint: Endpoint) -> Endpoint:
    """`endpoint`, with whatever it raises answered through `error_response`."""

    @functools.wraps(endpoint)
    async def answered(request: Request) -> Response:
        try:
            return await endpoint(request)
        except Exception as exc:  # noqa: BLE001 - every error gets its status, a 500 at worst
            return error_response(request, exc)

    return answered


def api_route(path: str, endpoint: Endpoint, methods: Sequence[str]) -> Route:
    """A route whose errors are answered by the table above."""
    return Route(path, answering_errors(endpoint), methods=list(methods))
