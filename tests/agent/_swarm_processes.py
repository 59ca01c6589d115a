"""Processes of a real swarm for tests/agent/test_peer_swarm.py, one role per process.

    python _swarm_processes.py hub --ip 127.0.0.1 --bt-port P --http-port H \
        --payload-dir DIR --torrent FILE [--upload-limit BYTES] [--no-seed]
    python _swarm_processes.py agent --listen 127.0.0.2:P --torrent FILE --save-dir DIR \
        --tracker URL [--web-seed URL] [--web-seed-after S] [--timeout S] --result FILE

The hub serves the tracker at /announce, the payload directory at /payloads/ (the web
seed) and its seeder's counters as JSON at /stats (with `tracked`, the peers its tracker
knows in that swarm), on Hypercorn's trio worker. An agent
downloads, writes its DownloadResult (or {"error": ...}) as JSON to --result, and then
keeps seeding until it is terminated: the other agents still need it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from functools import partial
from pathlib import Path

import libtorrent as lt
import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from agent.errors import DownloadError
from agent.peer_session import PeerSession
from hub.releases.published_releases import PublishedReleases
from hub.swarm.seeder import HubSeeder
from hub.swarm.tracker import Swarms
from hub.swarm.tracker_http import tracker_routes


async def run_hub(args: argparse.Namespace) -> None:
    swarms = Swarms(interval=60)
    hashes = lt.torrent_info(Path(args.torrent).read_bytes()).info_hashes()
    v1 = hashes.v1.to_bytes()
    published = PublishedReleases.fixed(
        {v1: v1, hashes.v2.to_bytes()[:20]: v1}, frozenset({args.payload_name})
    )
    seeder = None
    if not args.no_seed:
        seeder = HubSeeder(
            f"{args.ip}:{args.bt_port}",
            upload_limit=args.upload_limit,
            tracker_url=f"http://{args.ip}:{args.http_port}/announce",
        )

    async def stats(_request: Request) -> JSONResponse:
        counters = seeder.stats() if seeder else {}
        return JSONResponse(
            {v1: {"uploaded": s.total_payload_upload, "peers": s.num_peers,
                  "tracked": len(swarms.peers(bytes.fromhex(v1)))}
             for v1, s in counters.items()}
        )

    app = Starlette(
        routes=[
            *tracker_routes(swarms, published),
            Route("/stats", stats),
            Mount("/payloads", StaticFiles(directory=args.payload_dir)),
        ]
    )
    config = Config()
    config.bind = [f"{args.ip}:{args.http_port}"]
    config.accesslog = None
    async with trio.open_nursery() as nursery:
        # The tracker must answer before the seeder's first announce: a refused announce
        # makes libtorrent back off for 15 s or more.
        # Starlette and Hypercorn type the ASGI callable differently; it is the same thing.
        await nursery.start(partial(serve, app, config))  # type: ignore[arg-type]
        if seeder:
            await nursery.start(seeder.run)
            seeder.add(Path(args.torrent).read_bytes(), Path(args.payload_dir) / args.payload_name)


async def run_agent(args: argparse.Namespace) -> None:
    session = PeerSession(args.listen, upload_limit=args.upload_limit,
                          download_limit=args.download_limit, seed_time=3600)
    async with trio.open_nursery() as nursery:
        await nursery.start(session.run)
        try:
            result = await session.download(
                Path(args.torrent).read_bytes(),
                Path(args.save_dir),
                tracker_url=args.tracker,
                web_seed_url=args.web_seed,
                web_seed_after=args.web_seed_after,
                timeout=args.timeout,
            )
            answer: dict[str, object] = {
                "path": str(result.path),
                "total_downloaded": result.total_downloaded,
                "from_web_seed": result.from_web_seed,
                "from_peers": result.from_peers,
                "seconds": result.seconds,
                "web_seed_added": result.web_seed_added,
                "from_hub_seeder": result.from_hub_seeder,
                "hash_failures": result.hash_failures,
                "banned_peers": list(result.banned_peers),
            }
        except DownloadError as exc:
            answer = {"error": str(exc)}
        tmp = Path(args.result + ".tmp")
        tmp.write_text(json.dumps(answer))
        os.replace(tmp, args.result)
        await trio.sleep_forever()


def main() -> None:
    parser = argparse.ArgumentParser()
    roles = parser.add_subparsers(dest="role", required=True)
    hub = roles.add_parser("hub")
    hub.add_argument("--ip", required=True)
    hub.add_argument("--bt-port", type=int, required=True)
    hub.add_argument("--http-port", type=int, required=True)
    hub.add_argument("--payload-dir", required=True)
    hub.add_argument("--payload-name", required=True)
    hub.add_argument("--torrent", required=True)
    hub.add_argument("--upload-limit", type=int, default=0)
    hub.add_argument("--no-seed", action="store_true")
    agent = roles.add_parser("agent")
    agent.add_argument("--listen", required=True)
    agent.add_argument("--torrent", required=True)
    agent.add_argument("--save-dir", required=True)
    agent.add_argument("--tracker", required=True)
    agent.add_argument("--web-seed")
    agent.add_argument("--web-seed-after", type=float, default=10.0)
    agent.add_argument("--timeout", type=float, default=60.0)
    agent.add_argument("--upload-limit", type=int, default=0)
    agent.add_argument("--download-limit", type=int, default=0)
    agent.add_argument("--result", required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {args.role} %(name)s %(message)s")
    trio.run(run_hub if args.role == "hub" else run_agent, args)


if __name__ == "__main__":
    main()
