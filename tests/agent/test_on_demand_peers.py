"""The daemon's libtorrent session on demand: made by a download, dropped once nothing is
downloaded or seeded, made again by the next. Real libtorrent sessions on loopback; the
payloads are already in place (or have no source), so no swarm is needed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from agent.errors import ConfigError, DownloadError
from agent.on_demand_peers import OnDemandPeerSession
from tests.agent.test_peer_swarm import MiB, closed_tracker, free_port, make_payload


async def _wait_until(condition, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    with trio.fail_after(timeout):
        while not condition():
            await trio.sleep(0.05)


def _in_place(tmp_path: Path, name: str) -> tuple[bytes, Path]:
    payload, torrent = make_payload(tmp_path / f"hub-{name}", 1 * MiB)
    save_dir = tmp_path / name
    save_dir.mkdir()
    (save_dir / payload.name).write_bytes(payload.read_bytes())
    return torrent.read_bytes(), save_dir


async def test_a_download_makes_the_session_and_it_is_dropped_when_nothing_is_seeded(tmp_path):
    statuses: list[str] = []
    peers = OnDemandPeerSession(f"127.0.0.7:{free_port('127.0.0.7')}", seed_time=0,
                                on_change=statuses.append)
    first, first_dir = _in_place(tmp_path, "first")
    second, second_dir = _in_place(tmp_path, "second")
    async with trio.open_nursery() as nursery:
        await nursery.start(peers.run)
        assert not peers.active and peers.seeding() == [] and peers.holds_files() == set()
        assert peers.add_peer("00" * 20, "127.0.0.8", 6881) is False

        result = await peers.download(first, first_dir, closed_tracker())
        assert result.path == first_dir / "payload.bin"
        assert peers.sessions_created == 1
        await _wait_until(lambda: not peers.active and statuses[-1].startswith("no"))

        await peers.download(second, second_dir, closed_tracker())
        assert peers.sessions_created == 2, "a later download makes a new session"
        await _wait_until(lambda: not peers.active and statuses[-1].startswith("no"))
        nursery.cancel_scope.cancel()
    assert [s.split()[0] for s in statuses] == ["no", "libtorrent", "no", "libtorrent", "no"]


async def test_a_failed_download_leaves_no_session_behind(tmp_path):
    _payload, torrent = make_payload(tmp_path / "hub", 1 * MiB)
    peers = OnDemandPeerSession(f"127.0.0.9:{free_port('127.0.0.9')}")
    async with trio.open_nursery() as nursery:
        await nursery.start(peers.run)
        with pytest.raises(DownloadError, match="not complete after 1.0 s"):
            await peers.download(torrent.read_bytes(), tmp_path / "agent", closed_tracker(),
                                 timeout=1.0)
        await _wait_until(lambda: not peers.active)
        nursery.cancel_scope.cancel()


def test_bad_settings_are_refused_at_start_not_at_the_first_download():
    with pytest.raises(ConfigError, match="listen address"):
        OnDemandPeerSession("nowhere")
    with pytest.raises(ConfigError, match="must be >= 0"):
        OnDemandPeerSession("127.0.0.1:6881", seed_time=-1)
