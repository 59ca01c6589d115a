"""The hub's metrics pieces in-process: route templates (bounded, whatever the path),
the database counts read at scrape time and cached a second, and their cost at 10,000
devices on a real SQLite file; the bearer token file; relayed results counted; a hub
with metrics off."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import trio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route, Router

from agent.device_identity import DeviceIdentity
from agent.wire.gossip import RelayedResults
from agent.wire.result import SignedResult
from hub.database import HubDatabase
from hub.devices.enrollment import create_token, enroll_device
from hub.devices.relayed_results import ingest_relayed
from hub.errors import HubConfigError
from hub.metrics.endpoint import read_bearer_token
from hub.metrics.fleet_state import FleetStateCache, read_fleet_state
from hub.metrics.request_timing import UNMATCHED, RequestTiming, route_template
from tests.fleet import start_hub
from tests.hub.test_device_api import enroll_request, result_for

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


async def ok(request):  # type: ignore[no-untyped-def]
    return PlainTextResponse("ok")


ROUTES = [
    Route("/api/v1/results", ok, methods=["POST"]),
    Route("/devices/{device}", ok, methods=["GET"]),
    Mount("/metadata", app=PlainTextResponse("file")),
    Mount("/console", routes=[Route("/rollouts/{release:path}", ok)]),
]


def scope(path: str, method: str = "GET") -> dict:
    return {"type": "http", "path": path, "root_path": "", "method": method,
            "headers": [], "query_string": b""}


def test_route_templates_name_the_route_never_the_raw_path():
    assert route_template(ROUTES, scope("/api/v1/results", "POST"))[0] == "/api/v1/results"
    assert route_template(ROUTES, scope("/devices/dev-123"))[0] == "/devices/{device}"
    assert route_template(ROUTES, scope("/metadata/12.root.json"))[0] == "/metadata"
    assert route_template(ROUTES, scope("/api/v1/results"))[0] == "/api/v1/results"  # 405
    assert route_template(ROUTES, scope("/../../etc/passwd"))[0] == UNMATCHED


async def test_timing_labels_a_mounted_router_by_both_templates_and_odd_methods_as_other():
    seen: list[tuple[str, str, str]] = []
    app = RequestTiming(Router(ROUTES), ROUTES,
                        lambda method, route, status, seconds: seen.append(
                            (method, route, status)))

    async def call(path: str, method: str = "GET") -> None:
        sent: list[dict] = []

        async def receive() -> dict:
            return {"type": "http.request", "body": b""}

        async def send(message: dict) -> None:
            sent.append(message)

        await app(scope(path, method), receive, send)

    await call("/console/rollouts/app/1.0")
    await call("/devices/x", "BREW")
    await call("/nowhere/" + "x" * 500)
    assert seen == [("GET", "/console/rollouts/{release:path}", "200"),
                    ("other", "/devices/{device}", "405"),
                    ("GET", UNMATCHED, "404")]


def add_devices(database: HubDatabase, count: int, seen_every: int) -> None:
    with database.transaction() as db:
        db.executemany(
            "INSERT INTO devices (device_id, public_key, name, hostname, grp, site, status, "
            "enrolled_at, last_seen) VALUES (?, x'00', ?, ?, 'lab', 'a', ?, ?, ?)",
            [(f"dev-{n}", f"dev-{n}", f"dev-{n}", "removed" if n % 100 == 0 else "accepted",
              NOW.isoformat(timespec="seconds"),
              None if n % seen_every == 1 else
              (NOW - timedelta(seconds=n % seen_every * 60)).isoformat(timespec="seconds"))
             for n in range(count)])


def test_devices_are_counted_by_status_and_presence_in_one_cheap_read(tmp_path):
    database = HubDatabase.create(tmp_path / "hub.db")
    add_devices(database, 10_000, seen_every=60)
    with database.transaction() as db:
        db.execute("INSERT INTO rollouts (release, grp, state, stage_percent, started_at, "
                   "updated_at) VALUES ('app', 'lab', 'active', 25, 'x', 'x')")
    started = time.perf_counter()
    state = read_fleet_state(database, NOW, online_within=1800)
    took = time.perf_counter() - started
    database.close()
    assert sum(state.devices.values()) == 10_000
    assert state.devices[("removed", "online")] + state.devices[("removed", "stale")] == 100
    # Seen 0..29 minutes ago: online; 30..59 minutes ago, or never: stale.
    online = sum(n for (_, presence), n in state.devices.items() if presence == "online")
    assert online == sum(1 for n in range(10_000) if n % 60 != 1 and n % 60 * 60 <= 1800)
    assert state.rollouts == {("active", 25): 1}
    assert took < 0.5, f"reading 10,000 devices took {took:.3f} s"


async def test_a_change_by_another_connection_shows_once_the_second_is_over(tmp_path):
    path = tmp_path / "hub.db"
    HubDatabase.create(path).close()
    cache = FleetStateCache(path, online_within=1800, now=lambda: NOW)
    assert (await cache.get()).devices == {}
    other = HubDatabase(path)  # the CLI, in its own process, holds its own connection
    add_devices(other, 3, seen_every=1000)
    other.close()
    assert (await cache.get()).devices == {}  # within the second: the cached read
    assert cache.reads == 1
    await trio.sleep(1.05)
    assert (await cache.get()).devices == {  # dev-1 was never heard from: stale
        ("accepted", "online"): 1, ("accepted", "stale"): 1, ("removed", "online"): 1}
    assert cache.reads == 2


def test_a_bearer_token_file_must_hold_one_token(tmp_path):
    good = tmp_path / "token"
    good.write_text("  s3cret-token\n")
    assert read_bearer_token(good) == "s3cret-token"
    for content, why in ((b"", "one token"), (b"two words", "one token"),
                         (b"\xff\xfe", "ASCII"), (b"x" * 5000, "one token")):
        good.write_bytes(content)
        with pytest.raises(HubConfigError, match=why):
            read_bearer_token(good)
    with pytest.raises(HubConfigError, match="missing.*cannot read"):
        read_bearer_token(tmp_path / "missing")


async def test_a_hub_with_metrics_off_serves_no_metrics_and_times_nothing(tmp_path, nursery):
    hub = await start_hub(tmp_path, nursery, hub_toml="[metrics]\nenabled = false\n")
    assert hub.server is not None and hub.server.metrics is None
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"{hub.url}/metrics")).status_code == 404
        assert (await client.get(f"{hub.url}/api/v1/health")).status_code == 200


def test_relayed_results_are_counted_once_each_and_refused_ones_not_at_all(tmp_path):
    database = HubDatabase.create(tmp_path / "hub.db")
    token = create_token(database, "ab" * 32)
    device, stranger = (DeviceIdentity(Ed25519PrivateKey.generate()) for _ in range(2))
    enroll_device(database, enroll_request(device, token.secret))
    signed = SignedResult.sign(result_for(device), device.private_key)
    unknown = SignedResult.sign(result_for(stranger), stranger.private_key)
    counted: list[tuple[str, bool]] = []
    ingest_relayed(database, RelayedResults(results=[signed, signed, unknown]),
                   lambda outcome, stored: counted.append((outcome, stored)))
    database.close()
    assert counted == [("installed", True), ("installed", False)]
