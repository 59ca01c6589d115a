"""`POST /api/v1/control-signals`: one SignedControlWindow (at most MAX_CONTROL_BYTES)
from a device not yet updated; 201 stored, 200 already held, 422 a window the hub does
not keep (hub/rollouts/control_windows.py says which), and the usual 400/403/404/413."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from agent.wire.control_signals import MAX_CONTROL_BYTES, SignedControlWindow
from hub.api.error_statuses import api_route
from hub.api.request_body import read_body
from hub.database import HubDatabase
from hub.rollouts.control_windows import ingest_control_window


def control_signal_routes(
    in_database: Callable[[Callable[[HubDatabase], Any]], Awaitable[Any]],
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> list[BaseRoute]:
    async def post(request: Request) -> Response:
        body = await read_body(request, MAX_CONTROL_BYTES)
        signed = SignedControlWindow.from_bytes(body, "control window")
        moment = now()
        outcome = await in_database(lambda db: ingest_control_window(db, signed, moment))
        return JSONResponse({"stored": outcome.stored},
                            status_code=201 if outcome.stored else 200)

    return [api_route("/api/v1/control-signals", post, methods=["POST"])]
