"""`GET /metrics`: the Prometheus text format, on the hub's serving port.

Reachable like the rest of the public API unless `[metrics] bearer_token_file` is set:
what it tells (counts of devices per status, of rollouts per stage, bytes sent) is less
than what the hub already serves anyone (TUF metadata names every release and rollout
stage; the tracker's scrape counts every swarm). A hub facing untrusted networks sets a
token; Prometheus sends it with `authorization: {credentials_file: ...}` (README
"Metrics"). A missing or wrong token is a 401; the token never reaches a log.
"""

from __future__ import annotations

import hmac
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute

from hub.api.error_statuses import api_route
from hub.errors import HubConfigError
from hub.metrics.hub_metrics import HubMetrics

MAX_TOKEN_BYTES = 4096


def read_bearer_token(path: Path) -> str:
    """The token `path` holds (surrounding whitespace dropped); HubConfigError naming the
    file if it cannot be read or holds none."""
    try:
        data = path.read_bytes()[:MAX_TOKEN_BYTES + 1]
    except OSError as exc:
        raise HubConfigError(
            f"[metrics] bearer_token_file {path}: cannot read: {exc.strerror}") from None
    try:
        token = data.decode("ascii").strip()
    except UnicodeDecodeError:
        raise HubConfigError(
            f"[metrics] bearer_token_file {path}: not an ASCII token") from None
    if not token or len(data) > MAX_TOKEN_BYTES or any(c.isspace() for c in token):
        raise HubConfigError(f"[metrics] bearer_token_file {path}: must hold one token "
                             f"(no spaces, at most {MAX_TOKEN_BYTES} bytes)")
    return token


def metrics_routes(metrics: HubMetrics, bearer_token: str | None = None) -> list[BaseRoute]:
    expected = f"Bearer {bearer_token}".encode() if bearer_token else None

    async def scrape(request: Request) -> Response:
        if expected is not None:
            given = request.headers.get("authorization", "").encode("latin-1")
            if not hmac.compare_digest(given, expected):
                return PlainTextResponse("a bearer token is needed for /metrics",
                                         status_code=401,
                                         headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
        return Response(await metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return [api_route("/metrics", scrape, methods=["GET"])]
