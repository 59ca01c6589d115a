"""The hub writes its tracker and web seed into every .torrent for standard clients;
Meisitong's own sessions ignore both and keep their own: an agent announces with its
device id and adds the web seed only after `web_seed_after` seconds without progress,
and the hub's seeder announces only with its secret.

A real libtorrent session on 127.0.0.x, and a real HTTP server (Hypercorn) that records
every request, standing in for the tracker and web seed the torrent names.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agent.errors import DownloadError
from agent.peer_session import PeerSession
from hub.swarm.seeder import HubSeeder
from hub.swarm.torrent_maker import make_hybrid_torrent
from tests.fleet import free_port

pytestmark = pytest.mark.slow


class RecordingServer:
    """An HTTP app answering 404 to everything and remembering each request's path."""

    def __init__(self) -> None:
        self.requests: list[str] = []

        async def record(request: Request) -> Response:
            self.requests.append(f"{request.url.path}?{request.url.query}")
            return Response(status_code=404)

        self.app = Starlette(routes=[Route("/{path:path}", record)])

    def paths(self) -> set[str]:
        return {request.partition("?")[0] for request in self.requests}


async def start_recording_server(nursery: trio.Nursery, address: str) -> tuple[RecordingServer,
                                                                               str]:
    app = RecordingServer()
    config = Config()
    config.bind = [f"{address}:{free_port(address)}"]
    config.accesslog = None
    binds = await nursery.start(serve, app.app, config)  # type: ignore[arg-type]
    return app, binds[0]


def torrent_naming(url: str, directory: Path) -> tuple[Path, bytes]:
    payload = directory / "payload.bin"
    payload.write_bytes(os.urandom(256 * 1024))
    made = make_hybrid_torrent(payload, web_seed=f"{url}/payloads/payload.bin",
                               tracker=f"{url}/announce")
    return payload, made.torrent_bytes


async def test_agent_ignores_the_torrents_web_seed_and_tracker(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        named, named_url = await start_recording_server(nursery, "127.0.0.1")
        own, own_url = await start_recording_server(nursery, "127.0.0.3")
        _, torrent = torrent_naming(named_url, tmp_path)
        session = PeerSession(f"127.0.0.7:{free_port('127.0.0.7')}", device_id="dev-0001")
        await nursery.start(session.run)
        with pytest.raises(DownloadError, match="not complete after 4"):
            await session.download(torrent, tmp_path / "agent", f"{own_url}/announce",
                                   web_seed_url=f"{own_url}/payloads/payload.bin",
                                   web_seed_after=60, timeout=4)
        nursery.cancel_scope.cancel()
    session.close()
    assert named.requests == [], "neither the torrent's tracker nor its url-list"
    assert own.paths() == {"/announce"}, "its own tracker, and no web seed before 60 s"
    assert all("device=dev-0001" in request for request in own.requests)


async def test_hub_seeder_announces_only_to_its_own_tracker(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        named, named_url = await start_recording_server(nursery, "127.0.0.1")
        own, own_url = await start_recording_server(nursery, "127.0.0.3")
        payload, torrent = torrent_naming(named_url, tmp_path)
        seeder = HubSeeder(f"127.0.0.1:{free_port('127.0.0.1')}",
                           tracker_url=f"{own_url}/announce", hub_key="s3cret")
        await nursery.start(seeder.run)
        seeder.add(torrent, payload)
        with trio.fail_after(10):
            while not own.requests:
                await trio.sleep(0.1)
        await trio.sleep(1)  # room for an announce to the torrent's tracker, if it made one
        nursery.cancel_scope.cancel()
    seeder.close()
    assert named.requests == []
    assert own.paths() == {"/announce"}
    assert all("hub=s3cret" in request for request in own.requests)
