"""Locality end to end: a real hub (HTTP, tracker, libtorrent seeder) and real agent
daemons of two sites on 127.0.0.x, one release rolled out to all.

The tracker learns each agent's site from its enrollment (via the device id the agent
puts in its announces), the hub's seeder trades only with one gateway per site, the
other agents get the payload from their own site, and `status` shows per site the bytes
from the hub against from peers, from the agents' signed results.
"""

from __future__ import annotations

import os

import pytest
import trio

from hub.database import HubDatabase
from hub.releases.status_report import status_report
from tests.fleet import start_agent, start_hub

pytestmark = pytest.mark.slow

MiB = 1 << 20
SITES = {"paris": ("127.0.0.11", "127.0.0.12", "127.0.0.13"),
         "lyon": ("127.0.0.21", "127.0.0.22", "127.0.0.23")}


async def test_hub_seeds_one_gateway_per_site_and_status_shows_bytes_per_site(tmp_path, nursery):
    hub = await start_hub(tmp_path, nursery)
    assert hub.server is not None
    agents = []
    for site, addresses in SITES.items():
        for n, address in enumerate(addresses):
            daemon, _prefix = await start_agent(hub, nursery, f"{site}{n}", address, site=site)
            daemon.ctx.web_seed_after = 60  # this test is about the swarm, not the web seed
            agents.append((site, daemon))
    release = hub.publish("bigapp", "1.0.0", {"blob.bin": os.urandom(8 * MiB)})
    hub.rollout(release)
    with trio.fail_after(90):
        async with trio.open_nursery() as cycles:
            for _site, daemon in agents:
                cycles.start_soon(daemon.cycle)
    for _site, daemon in agents:
        assert await daemon.deliver_results() == 0
    assert sorted(r["outcome"] for r in hub.results()) == ["installed"] * 6

    database = HubDatabase(hub.hub_dir.database)
    try:
        [report] = status_report(database)["releases"]
        info_hash = bytes.fromhex(
            database.query("SELECT info_hash_v1 FROM releases")[0]["info_hash_v1"]
        )
    finally:
        database.close()

    # The tracker knew every agent's site, and which peer was the hub.
    peers = hub.server.swarms.peers(info_hash)
    sites_seen = {p.device: p.site for p in peers if not p.is_hub}
    assert sites_seen == {d.identity.device_id: site for site, d in agents}
    assert sum(p.is_hub for p in peers) == 1
    gateway_ids = {
        key for site in SITES for key in hub.server.site_peers.gateways(info_hash, site)
    }
    assert len(gateway_ids) == 2

    # Only the gateways received anything from the hub.
    length = report["length"]
    for _site, daemon in agents:
        [deployment] = daemon.journal.deployments()
        from_hub = deployment.detail.bytes_from_hub
        if daemon.identity.device_id in gateway_ids:
            print(f"gateway {daemon.identity.device_id}: {from_hub} of {length} bytes "
                  f"from the hub")
            # A gateway's only source is the hub (its site's peers have only what it
            # passed on). Its last blocks, which libtorrent reports no finished alert for
            # on a busy machine, count by whom they were asked of
            # (tests/agent/test_unreported_blocks.py).
            assert from_hub >= 0.99 * length, (daemon.identity.device_id, from_hub)
        else:
            assert from_hub == 0, daemon.identity.device_id
    # The hub's seeder sent about one copy per site (its connections are gone by now:
    # a seed drops peers that finished).
    [seeded] = hub.server.seeder.stats().values()
    assert seeded.total_payload_upload <= 2 * 1.1 * length

    by_site = {row["site"]: row for row in report["sites"]}
    assert set(by_site) == {"paris", "lyon"}
    for row in by_site.values():
        assert (row["devices"], row["reported"]) == (3, 3)
        # One copy per site from the hub (up to libtorrent's end-game duplicates), the
        # rest of the site's three copies from its peers.
        assert 0 < row["from_hub"] <= 1.1 * length
        assert row["from_hub"] + row["from_peers"] >= 2.9 * length
