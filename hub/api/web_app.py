"""The hub's HTTP face: static TUF metadata and targets, payloads (the web seed), the
tracker, and the small JSON API for enrollment and results.

Metadata and payloads are static files: any web server or CDN could serve them, and TUF
makes that safe. The API validates every body against the wire formats and refuses a bad
one with a 4xx naming the problem; hub/api/error_statuses.py maps every route's errors
to statuses (a server fault is a 500, which agents retry, never a 4xx they give up on).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import trio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send

from agent.errors import AgentError
from agent.wire.enrollment import EnrollRequest
from agent.wire.result import SignedResult
from hub.api.error_statuses import api_route, error_response
from hub.api.request_body import read_body, read_json_model
from hub.config import HubConfig
from hub.console.console_app import console_app
from hub.console.live import LiveRollouts
from hub.database import HubDatabase
from hub.devices.certificate_authority import certify_device
from hub.devices.enrollment import enroll_device
from hub.devices.relayed_results import relay_routes
from hub.devices.results_store import ingest_result
from hub.errors import HubError
from hub.hub_dir import HubDir
from hub.inventory.routes import inventory_routes
from hub.policy.leases import lease_routes
from hub.releases.published_releases import PublishedReleases
from hub.rollouts.control_routes import control_signal_routes

log = logging.getLogger(__name__)


class CountingFiles:
    """Wraps a static-file app and counts the body bytes it sends per path, so the hub
    knows how much of each payload left it over HTTP (the web seed)."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app
        self.sent: Counter[str] = Counter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Under a Mount, Starlette keeps the full path and puts the mount in root_path.
        path = str(scope.get("path", ""))
        path = path.removeprefix(str(scope.get("root_path", ""))).lstrip("/")

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.body":
                self.sent[path] += len(message.get("body", b""))
            await send(message)

        await self.app(scope, receive, counting_send)


class PublishedPayloads:
    """Wraps a static-file app so it serves the payloads of published releases only:
    `publish` puts the file in place (and links it under /targets) before the release
    key signs its target, and a payload nothing signed is nothing to hand out (404, as
    if absent).

    Under /payloads/ every path is a payload's target path. Under /targets/ (`hashed`)
    payloads are at `releases/NAME/VERSION/HASH.FILE` beside their torrents and the other
    signed files; only the payloads are checked, the rest is TUF metadata's business."""

    def __init__(
        self,
        app: Callable[[Scope, Receive, Send], Awaitable[None]],
        published: PublishedReleases,
        hashed: bool = False,
    ) -> None:
        self.app = app
        self.published = published
        self.hashed = hashed

    def _payload_target(self, path: str) -> str | None:
        """The release target a request path names, None if it names no payload."""
        if not self.hashed:
            return path
        if not path.startswith("releases/") or path.endswith(".torrent"):
            return None
        directory, _, name = path.rpartition("/")
        return f"{directory}/{name.partition('.')[2]}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        path = path.removeprefix(str(scope.get("root_path", ""))).lstrip("/")
        target = self._payload_target(path) if scope["type"] == "http" else None
        if target is not None and not await self.published.is_published_target(target):
            await PlainTextResponse("Not Found", status_code=404)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def make_app(
    hub_dir: HubDir,
    extra_routes: Sequence[BaseRoute] = (),
    published: PublishedReleases | None = None,
    on_ingested: Callable[[str, bool], None] = lambda outcome, stored: None,
    config: HubConfig | None = None,
    console_live: LiveRollouts | None = None,
) -> Starlette:
    """The ASGI app. `extra_routes` carries the tracker's routes; `published` is the view
    of published releases the web seed serves (read from the hub database if not given);
    `on_ingested(outcome, stored)` is told of every result record that verified (the
    hub's metrics count them); `config` the hub.toml settings the console uses
    (sessions, trusted proxies); `console_live` the console's live rollout progress, which
    `serve` runs (hub/console/live.py)."""
    published = published or PublishedReleases.from_database(hub_dir.database)
    # Refused requests are not counted: the counters are per release.
    payload_files = CountingFiles(StaticFiles(directory=hub_dir.payloads, check_dir=False))

    async def in_database(work: Callable[[HubDatabase], Any]) -> Any:
        def run() -> Any:
            database = HubDatabase(hub_dir.database)
            try:
                return work(database)
            finally:
                database.close()

        return await trio.to_thread.run_sync(run)

    async def enroll(request: Request) -> Response:
        enroll_request = await read_json_model(request, EnrollRequest, "enroll request")
        status = await in_database(lambda db: enroll_device(db, enroll_request))
        certificate: dict[str, str] = {}
        if status == "accepted":  # the device's certificate for mutual TLS with its peers
            certificate = await in_database(
                lambda db: certify_device(hub_dir.online_keys, db, enroll_request.device_id)
            )
        return JSONResponse(
            {"device_id": enroll_request.device_id, "status": status, **certificate}
        )

    async def results(request: Request) -> Response:
        signed = SignedResult.from_bytes(await read_body(request), "result record")
        outcome = await in_database(lambda db: ingest_result(db, signed))
        on_ingested(signed.record.outcome, outcome.stored)
        return JSONResponse({"stored": outcome.stored}, status_code=201 if outcome.stored else 200)

    async def health(request: Request) -> Response:
        return JSONResponse({"ok": True})

    routes: list[BaseRoute] = [
        api_route("/api/v1/health", health, methods=["GET"]),
        api_route("/api/v1/enroll", enroll, methods=["POST"]),
        api_route("/api/v1/results", results, methods=["POST"]),
        Mount("/metadata", StaticFiles(directory=hub_dir.metadata, check_dir=False)),
        # Payloads on another filesystem are symlinked in (hub/repository/target_files.py); only the
        # hub writes this directory.
        Mount("/targets", PublishedPayloads(
            StaticFiles(directory=hub_dir.targets, check_dir=False, follow_symlink=True),
            published, hashed=True,
        )),
        Mount("/payloads", PublishedPayloads(payload_files, published)),
        *relay_routes(in_database, on_ingested),
        *inventory_routes(in_database),
        *control_signal_routes(in_database),
        *lease_routes(hub_dir),
        # The web console, behind login (hub/console/auth.py).
        Mount("/console", console_app(hub_dir, config or HubConfig(), live=console_live)),
        *extra_routes,
    ]
    # Routes not made with api_route still answer the hub's and agent's errors alike.
    app = Starlette(routes=routes,
                    exception_handlers={HubError: error_response, AgentError: error_response})
    app.state.payload_files = payload_files
    return app
