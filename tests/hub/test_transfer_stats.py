"""The hub's count of payload bytes sent survives its own restarts."""

import httpx
import trio

from hub.config import HubConfig
from hub.database import HubDatabase
from hub.serve import STATS_FLUSH_SECONDS, HubServer
from tests.fleet import start_hub


async def fetch_payload_once(url: str, target: str) -> int:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{url}/payloads/{target}")
        assert response.status_code == 200
        return len(response.content)


async def test_web_seed_bytes_accumulate_across_hub_restarts(tmp_path):
    async with trio.open_nursery() as first_run:
        hub = await start_hub(tmp_path, first_run)
        target = hub.publish("app", "1.0.0", {"blob": b"x" * 50_000})
        sent = await fetch_payload_once(hub.url, target)
        await trio.sleep(STATS_FLUSH_SECONDS + 0.5)
        first_run.cancel_scope.cancel()
    async with trio.open_nursery() as second_run:
        server = HubServer(hub.hub_dir, HubConfig.load(hub.hub_dir.config_file))
        await second_run.start(server.run)
        sent += await fetch_payload_once(hub.url, target)
        await trio.sleep(STATS_FLUSH_SECONDS + 0.5)
        second_run.cancel_scope.cancel()
    database = HubDatabase(hub.hub_dir.database)
    assert database.transfer_bytes(target)["web-seed"] == sent
    database.close()
