"""The swarm's membership does not depend on when a rollout starts (issue 10).

A real served hub (HTTP, tracker, libtorrent seeder) with its tracker interval shrunk to
5 s, so the tracker forgets a silent peer after 17.5 s: the hub serves for longer than
that before anything is rolled out. Its seeder must still be in the swarm (scrape shows
it as the one seed) and must be what the agent downloads from. With libtorrent's default
`min_announce_interval` (300 s) the seeder announced once, expired, and an agent
arriving later found no hub in the swarm until the web seed rescued it.
"""

from __future__ import annotations

import os
from urllib.parse import quote_from_bytes

import httpx
import libtorrent as lt
import pytest
import trio

from hub.database import HubDatabase
from tests.fleet import start_agent, start_hub

pytestmark = pytest.mark.slow

MiB = 1 << 20
INTERVAL = 5
EXPIRY = 3.5 * INTERVAL


async def scrape(url: str, info_hash: bytes) -> dict[bytes, int]:
    async with httpx.AsyncClient() as http:
        answer = await http.get(f"{url}/scrape?info_hash={quote_from_bytes(info_hash)}")
    return lt.bdecode(answer.content)[b"files"].get(info_hash, {})


async def test_seeder_stays_in_its_swarm_when_the_rollout_starts_after_the_expiry(
    tmp_path, nursery
):
    hub = await start_hub(tmp_path, nursery, hub_toml=f"[tracker]\ninterval = {INTERVAL}\n")
    assert hub.server is not None
    release = hub.publish("late", "1.0.0", {"blob.bin": os.urandom(2 * MiB)})
    database = HubDatabase(hub.hub_dir.database)
    try:
        [row] = database.query("SELECT info_hash_v1, info_hash_v2, length FROM releases")
    finally:
        database.close()
    v1, v2 = bytes.fromhex(row["info_hash_v1"]), bytes.fromhex(row["info_hash_v2"])[:20]

    await trio.sleep(EXPIRY + 2 * INTERVAL)  # the hub serves, nobody else is there
    for info_hash in (v1, v2):
        assert (await scrape(hub.url, info_hash)).get(b"complete") == 1, info_hash.hex()

    daemon, _prefix = await start_agent(hub, nursery, "late0", "127.0.0.31")
    daemon.ctx.web_seed_after = 60  # only the seeder can deliver within the test
    hub.rollout(release)
    with trio.fail_after(30):
        await daemon.cycle()
    [deployment] = daemon.journal.deployments()
    assert deployment.state == "committed", deployment
    [seeded] = hub.server.seeder.stats().values()
    assert seeded.total_payload_upload >= row["length"]
