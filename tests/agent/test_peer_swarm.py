"""Real libtorrent swarms: a hub process and agent processes on distinct loopback addresses.

Each process binds its own 127.0.0.x, so the tracker, the peer-class filter and the
rate limits see what they would see on a LAN. Processes are ended by PID in a finally;
every wait has a deadline, so a broken swarm fails the test instead of hanging it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import trio

from agent.errors import DownloadError
from agent.peer_session import PeerSession
from hub.swarm.torrent_maker import make_hybrid_torrent

REPO = Path(__file__).resolve().parents[2]
HELPER = Path(__file__).with_name("_swarm_processes.py")
MiB = 1 << 20

pytestmark = pytest.mark.slow


def free_port(ip: str) -> int:
    with socket.socket() as s:
        s.bind((ip, 0))
        return s.getsockname()[1]


def make_payload(directory: Path, size: int) -> tuple[Path, Path]:
    """A random payload and its torrent file, both in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    payload = directory / "payload.bin"
    payload.write_bytes(os.urandom(size))
    torrent = directory / "payload.torrent"
    torrent.write_bytes(make_hybrid_torrent(payload).torrent_bytes)
    return payload, torrent


class Processes:
    """Started helper processes, ended by their PID (terminate, then kill)."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = open(self.logs / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        proc = subprocess.Popen(
            [sys.executable, str(HELPER), *args], cwd=REPO, env=env, stdout=log, stderr=log
        )
        log.close()
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)

    def dump_logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
            for p in sorted(self.logs.glob("*.log"))
        )


@contextmanager
def processes(tmp_path: Path):
    logs = tmp_path / "logs"
    logs.mkdir()
    procs = Processes(logs)
    try:
        yield procs
    except BaseException:
        print(procs.dump_logs())
        raise
    finally:
        procs.stop_all()


def start_hub(
    procs: Processes, payload: Path, torrent: Path, upload_limit: int = 0, seed: bool = True
) -> str:
    """Start a hub on 127.0.0.1; returns its base URL."""
    http_port = free_port("127.0.0.1")
    args = [
        "hub", "--ip", "127.0.0.1",
        "--bt-port", str(free_port("127.0.0.1")),
        "--http-port", str(http_port),
        "--payload-dir", str(payload.parent),
        "--payload-name", payload.name,
        "--torrent", str(torrent),
        "--upload-limit", str(upload_limit),
    ]
    if not seed:
        args.append("--no-seed")
    procs.start("hub", *args)
    return f"http://127.0.0.1:{http_port}"


def start_agent(
    procs: Processes, n: int, tmp_path: Path, torrent: Path, hub: str,
    web_seed_after: float | None = None, timeout: float = 60.0,
    upload: int = 0, download: int = 0,
) -> Path:
    """Start agent n on 127.0.0.<n+1> (web seed only if `web_seed_after` is given, rate
    limits in bytes/s); returns the path its result will be written to."""
    ip = f"127.0.0.{n + 1}"
    result = tmp_path / f"agent{n}.json"
    web_seed = [] if web_seed_after is None else [
        "--web-seed", f"{hub}/payloads/payload.bin", "--web-seed-after", str(web_seed_after)]
    procs.start(
        f"agent{n}", "agent",
        "--listen", f"{ip}:{free_port(ip)}",
        "--torrent", str(torrent),
        "--save-dir", str(tmp_path / f"agent{n}"),
        "--tracker", f"{hub}/announce",
        *web_seed,
        "--timeout", str(timeout),
        "--upload-limit", str(upload),
        "--download-limit", str(download),
        "--result", str(result),
    )
    return result


async def wait_for_hub(hub: str, deadline: float = 20.0) -> None:
    with trio.fail_after(deadline):
        async with httpx.AsyncClient() as client:
            while True:
                try:
                    if (await client.get(f"{hub}/stats")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await trio.sleep(0.1)


async def hub_uploaded(hub: str) -> int:
    async with httpx.AsyncClient() as client:
        stats = (await client.get(f"{hub}/stats")).json()
    return sum(s["uploaded"] for s in stats.values())


async def wait_for_results(paths: list[Path], deadline: float) -> list[dict]:
    with trio.fail_after(deadline):
        while not all(p.exists() for p in paths):
            await trio.sleep(0.2)
    return [json.loads(p.read_text()) for p in paths]


def assert_identical(result: dict, payload: Path) -> None:
    assert "error" not in result, result["error"]
    assert Path(result["path"]).read_bytes() == payload.read_bytes()


async def test_three_agents_get_identical_payload_and_the_hub_sends_less_than_three_copies(
    tmp_path,
):
    size = 24 * MiB
    payload, torrent = make_payload(tmp_path / "hub", size)
    started = time.monotonic()
    with processes(tmp_path) as procs:
        hub = start_hub(procs, payload, torrent, upload_limit=4 * MiB)
        await wait_for_hub(hub)
        results_at = [
            start_agent(procs, n, tmp_path, torrent, hub, web_seed_after=120) for n in (1, 2, 3)
        ]
        results = await wait_for_results(results_at, deadline=60)
        for result in results:
            assert_identical(result, payload)
            assert result["from_web_seed"] == 0
        copies = await hub_uploaded(hub) / size
    wall = time.monotonic() - started
    print(
        f"\nswarm: 3 agents x {size // MiB} MiB, hub limited to 4 MiB/s: hub sent {copies:.2f} "
        f"copies; agents took {[round(r['seconds'], 1) for r in results]} s; "
        f"test wall time {wall:.1f} s"
    )
    assert copies < 2.5


async def test_web_seed_alone_delivers_the_payload_when_nobody_seeds(tmp_path):
    size = 8 * MiB
    payload, torrent = make_payload(tmp_path / "hub", size)
    with processes(tmp_path) as procs:
        hub = start_hub(procs, payload, torrent, seed=False)
        await wait_for_hub(hub)
        [result] = await wait_for_results(
            [start_agent(procs, 1, tmp_path, torrent, hub, web_seed_after=0)], deadline=40
        )
    assert_identical(result, payload)
    print(f"\nweb seed only: {result['from_web_seed']} of {result['total_downloaded']} bytes "
          f"counted as from the web seed, {result['seconds']:.1f} s")
    assert result["web_seed_added"]
    # Every byte: the last blocks, which libtorrent reports no finished alert for on a busy
    # machine, count by whom they were asked of (tests/agent/test_unreported_blocks.py).
    assert result["from_web_seed"] == size


async def test_hub_upload_limit_binds_a_loopback_peer(tmp_path):
    size, limit = 8 * MiB, 2 * MiB
    payload, torrent = make_payload(tmp_path / "hub", size)
    with processes(tmp_path) as procs:
        hub = start_hub(procs, payload, torrent, upload_limit=limit)
        await wait_for_hub(hub)
        [result] = await wait_for_results(
            [start_agent(procs, 1, tmp_path, torrent, hub, web_seed_after=120)], deadline=40
        )
    assert_identical(result, payload)
    rate = size / result["seconds"]
    print(f"\nrate limit: 8 MiB at a 2 MiB/s limit took {result['seconds']:.1f} s "
          f"({rate / MiB:.2f} MiB/s)")
    # Unlimited, loopback moves 8 MiB in well under a second; a loose bound allows for
    # libtorrent's initial burst.
    assert rate < 1.5 * limit


def closed_tracker() -> str:
    return f"http://127.0.0.1:{free_port('127.0.0.1')}/announce"


async def test_download_with_no_source_raises_download_error_naming_the_torrent(tmp_path):
    payload, torrent = make_payload(tmp_path / "hub", 1 * MiB)
    session = PeerSession(f"127.0.0.5:{free_port('127.0.0.5')}")
    async with trio.open_nursery() as nursery:
        await nursery.start(session.run)
        with pytest.raises(DownloadError) as caught:
            await session.download(
                torrent.read_bytes(), tmp_path / "agent", closed_tracker(), timeout=1.5
            )
        nursery.cancel_scope.cancel()
    session.close()
    message = str(caught.value)
    assert "payload.bin" in message
    assert "not complete after 1.5 s" in message
    assert "0 peers connected" in message
    assert session.seeding() == []


async def test_payload_already_in_save_dir_is_recognised_without_downloading(tmp_path):
    payload, torrent = make_payload(tmp_path / "hub", 2 * MiB)
    save_dir = tmp_path / "agent"
    save_dir.mkdir()
    (save_dir / payload.name).write_bytes(payload.read_bytes())
    session = PeerSession(f"127.0.0.6:{free_port('127.0.0.6')}", seed_time=0)
    async with trio.open_nursery() as nursery:
        await nursery.start(session.run)
        with trio.fail_after(10):
            result = await session.download(torrent.read_bytes(), save_dir, closed_tracker())
        assert result.total_downloaded == 0
        assert result.path == save_dir / payload.name
        with trio.fail_after(5):  # seed_time=0: run() reaps it at its next pass
            while session.seeding():
                await trio.sleep(0.1)
        nursery.cancel_scope.cancel()
    session.close()


def test_payload_torrent_is_hybrid_bare_and_deterministic(tmp_path):
    """What the swarm tests rely on: one torrent with both v1 and v2 hashes, naming no
    tracker or web seed unless asked to (tests/hub/test_published_torrent.py), the same
    for the same file."""
    import hashlib

    import libtorrent as lt

    from hub.swarm.torrent_maker import hash_file

    payload = tmp_path / "p.bin"
    payload.write_bytes(os.urandom(3 * MiB + 5))
    seen: list[tuple[int, int]] = []
    made = make_hybrid_torrent(payload, progress=lambda d, t: seen.append((d, t)),
                               piece_size=256 * 1024)
    assert seen[-1] == (made.num_pieces, made.num_pieces) == (13, 13)
    decoded = lt.bdecode(made.torrent_bytes)
    assert b"announce" not in decoded and b"url-list" not in decoded
    assert decoded[b"created by"] == b"meisitong"
    assert b"pieces" in decoded[b"info"] and b"piece layers" in decoded  # v1 and v2
    assert len(made.info_hash_v1) == 40 and len(made.info_hash_v2) == 64
    assert make_hybrid_torrent(payload) == make_hybrid_torrent(payload)
    assert hash_file(payload) == (3 * MiB + 5, hashlib.sha256(payload.read_bytes()).hexdigest())
