"""A peer that serves corrupt pieces is caught by the piece hashes, banned, and does not
stop the honest peers: a real hostile libtorrent process (_corrupt_seeder.py) seeding a
corrupted copy, unthrottled, beside an honest seeder that is slow on purpose, so the
downloaders take most blocks from the liar first."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.agent.test_peer_swarm import (
    REPO,
    MiB,
    assert_identical,
    free_port,
    make_payload,
    processes,
    start_agent,
    start_hub,
    wait_for_hub,
    wait_for_results,
)

pytestmark = pytest.mark.slow
HOSTILE = Path(__file__).with_name("_corrupt_seeder.py")


async def test_corrupt_peer_is_caught_banned_and_the_others_still_complete(tmp_path):
    size = 8 * MiB
    payload, torrent = make_payload(tmp_path / "hub", size)
    honest_dir = tmp_path / "agent1"
    honest_dir.mkdir()
    (honest_dir / payload.name).write_bytes(payload.read_bytes())
    liar_ip = "127.0.0.9"
    liar = f"{liar_ip}:{free_port(liar_ip)}"
    with processes(tmp_path) as procs:
        hub = start_hub(procs, payload, torrent, seed=False)  # tracker only
        await wait_for_hub(hub)
        log = open(procs.logs / "liar.log", "wb")  # noqa: SIM115 - closed below
        hostile = subprocess.Popen(
            [sys.executable, str(HOSTILE), "--listen", liar, "--torrent", str(torrent),
             "--payload", str(payload), "--tracker", f"{hub}/announce",
             "--workdir", str(tmp_path / "liar")],
            cwd=REPO, stdout=log, stderr=log,
        )
        log.close()
        procs.procs.append(hostile)
        # The honest seeder: already has the payload, uploads at 1 MiB/s.
        await wait_for_results(
            [start_agent(procs, 1, tmp_path, torrent, hub, upload=1 * MiB)], deadline=20
        )
        results = await wait_for_results(
            [start_agent(procs, n, tmp_path, torrent, hub) for n in (2, 3)], deadline=60
        )
    for result in results:
        assert_identical(result, payload)
    print(f"\ncorrupt peer: hash failures {[r['hash_failures'] for r in results]}, "
          f"banned {[r['banned_peers'] for r in results]}, "
          f"seconds {[round(r['seconds'], 1) for r in results]}")
    for result in results:
        if result["hash_failures"]:
            assert result["banned_peers"] == [liar]
    assert any(result["hash_failures"] for result in results)
