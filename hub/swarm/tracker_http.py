"""The tracker's HTTP endpoints: GET /announce and GET /scrape (BEP 48), thin shells
around hub/swarm/tracker.py (state) and hub/swarm/tracker_wire.py (parsing and bencoding).

- Only swarms of published releases are served: an announce for any other info-hash is
  answered with a `failure reason` and recorded nowhere, and scrape leaves such hashes
  out. The tracker is the hub's, not a public one.
- The peer's address is the connection's (tracker_wire.py says why `ip=` is ignored).
- Every refusal, malformed or not, is a bencoded `failure reason` with HTTP 200, as
  trackers answer; the route never raises. Refusals are logged at INFO with the source
  address: a tracker sees many stale clients, so they are not warnings.
- What is logged never includes the `hub` parameter (the seeder's secret).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hub.api.error_statuses import api_route
from hub.errors import TrackerRequestError
from hub.releases.published_releases import PublishedReleases
from hub.swarm.tracker import Swarms
from hub.swarm.tracker_wire import SwarmCounts, failure, parse_announce, parse_scrape, scrape_answer

log = logging.getLogger(__name__)

SiteLookup = Callable[[str], Awaitable[str | None]]
"""device id -> its site, or None when the hub does not know the device."""


async def handle_announce(
    swarms: Swarms,
    published: PublishedReleases,
    raw_query: bytes,
    remote_ip: str,
    site_of: SiteLookup | None = None,
    answered: Callable[[bool], None] = lambda accepted: None,
) -> bytes:
    """The whole announce, refusals included, as bytes to send back with HTTP 200;
    `answered(accepted)` is told which it was (the hub's metrics count them)."""
    try:
        request = parse_announce(raw_query, remote_ip)
        release = await published.release_of(request.info_hash)
        if release is None:
            raise TrackerRequestError(
                f"info_hash {request.info_hash.hex()} is no release this hub published"
            )
        site = None
        if request.device is not None and site_of is not None:
            site = await site_of(request.device)
        answer = swarms.announce(request, site, release)
    except TrackerRequestError as exc:
        log.info("announce refused from %s: %s", remote_ip, exc)
        answered(False)
        return failure(str(exc))
    answered(True)
    return answer


async def handle_scrape(swarms: Swarms, published: PublishedReleases, raw_query: bytes) -> bytes:
    """Counts for the asked swarms of published releases (all such swarms if none asked)."""
    try:
        asked = parse_scrape(raw_query)
    except TrackerRequestError as exc:
        return failure(str(exc))
    releases = (await published.current()).releases
    hashes = asked or [h for h in swarms.info_hashes() if h in releases]
    files = {}
    for info_hash in hashes:
        if info_hash not in releases:
            continue
        files[info_hash] = swarms.counts(info_hash) or SwarmCounts(0, 0, 0)
    return scrape_answer(files, swarms.interval)


def tracker_routes(
    swarms: Swarms, published: PublishedReleases, site_of: SiteLookup | None = None,
    answered: Callable[[bool], None] = lambda accepted: None,
) -> list[Route]:
    """GET /announce and GET /scrape backed by `swarms`, for the releases in `published`;
    `site_of` tells an announcing device's site; `answered(accepted)` hears of each
    announce."""

    async def announce(request: Request) -> Response:
        remote_ip = request.client.host if request.client else ""
        body = await handle_announce(
            swarms, published, request.scope.get("query_string", b""), remote_ip, site_of,
            answered,
        )
        return Response(body, media_type="text/plain")

    async def scrape(request: Request) -> Response:
        body = await handle_scrape(swarms, published, request.scope.get("query_string", b""))
        return Response(body, media_type="text/plain")

    return [  # a refusal is a 200 (above); only a server fault reaches the error table
        api_route("/announce", announce, methods=["GET"]),
        api_route("/scrape", scrape, methods=["GET"]),
    ]
