"""Configured rate limits bind LAN peers too (DESIGN §7): real libtorrent processes on
distinct 127.0.0.x addresses, which libtorrent would otherwise treat as local and exempt.
The hub's own upload limit is pinned in test_peer_swarm.py."""

from __future__ import annotations

import pytest

from tests.agent.test_peer_swarm import (
    MiB,
    assert_identical,
    make_payload,
    processes,
    start_agent,
    start_hub,
    wait_for_hub,
    wait_for_results,
)

pytestmark = pytest.mark.slow


async def test_agent_download_limit_binds_a_loopback_peer(tmp_path):
    size, limit = 8 * MiB, 2 * MiB
    payload, torrent = make_payload(tmp_path / "hub", size)
    with processes(tmp_path) as procs:
        hub = start_hub(procs, payload, torrent)  # the hub seeds unlimited
        await wait_for_hub(hub)
        [result] = await wait_for_results(
            [start_agent(procs, 1, tmp_path, torrent, hub, download=limit)], deadline=40
        )
    assert_identical(result, payload)
    rate = size / result["seconds"]
    print(f"\ndownload limit 2 MiB/s: 8 MiB in {result['seconds']:.1f} s ({rate / MiB:.2f} MiB/s)")
    assert rate < 1.5 * limit


async def test_agent_upload_limit_binds_a_loopback_peer(tmp_path):
    size, limit = 8 * MiB, 2 * MiB
    payload, torrent = make_payload(tmp_path / "hub", size)
    seeder_dir = tmp_path / "agent1"
    seeder_dir.mkdir()
    (seeder_dir / payload.name).write_bytes(payload.read_bytes())
    with processes(tmp_path) as procs:
        hub = start_hub(procs, payload, torrent, seed=False)  # only the tracker
        await wait_for_hub(hub)
        # Agent 1 already has the payload: it only seeds, at its upload limit.
        [seeded] = await wait_for_results(
            [start_agent(procs, 1, tmp_path, torrent, hub, upload=limit)], deadline=20
        )
        assert seeded["total_downloaded"] == 0
        [result] = await wait_for_results(
            [start_agent(procs, 2, tmp_path, torrent, hub)], deadline=40
        )
    assert_identical(result, payload)
    rate = size / result["seconds"]
    print(f"\nupload limit 2 MiB/s: 8 MiB in {result['seconds']:.1f} s ({rate / MiB:.2f} MiB/s)")
    assert rate < 1.5 * limit
