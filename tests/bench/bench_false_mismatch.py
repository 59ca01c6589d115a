"""False payload mismatches under CPU load: hashing at `is_seeding` vs once on disk.

A hub seeder process on 127.0.0.1 serves one random payload; an agent PeerSession in this
process on 127.0.0.31 downloads it N times back to back into fresh directories, and
hashes each file the moment `download()` returns, as the agent's verification does.
CPU hog processes starve libtorrent's disk thread, and disk hogs (each rewriting a
64 MiB file and fsyncing it, over and over) keep the disk busy, as on a loaded endpoint;
all are started here and ended by PID. With CPU hogs alone and an otherwise idle machine
the baseline may see no mismatch at all: the race needs writes to lag.

- baseline: the old behaviour, the file hashed as soon as libtorrent says it is seeding
  (a PeerSession whose wait for the disk flush is a no-op);
- on disk: the current PeerSession, which returns only after libtorrent's
  cache_flushed_alert.

Rounds alternate between the two so both see the same load. Printed: false mismatches
per mode (each download is of the right bytes, so every mismatch is false) and the time
per download (download + hash) of the current behaviour as a ratio of the baseline's.

    python -m tests.bench.bench_false_mismatch [--downloads 15] [--mib 64] [--hogs 4] \
        [--disk-hogs 1]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import trio

from agent.peer_session import PeerSession, _Torrent
from tests.agent.test_payload_on_disk import cpu_hogs, disk_hogs, sha256, wait_for_seeder
from tests.agent.test_peer_swarm import (
    MiB,
    free_port,
    make_payload,
    processes,
    start_hub,
)


class HashAtSeeding(PeerSession):
    """The behaviour before issue 10: return as soon as the torrent is seeding."""

    async def _wait_on_disk(self, torrent: _Torrent) -> None:
        return


async def one_download(session: PeerSession, torrent: bytes, directory: Path, hub: str,
                       want: str) -> tuple[bool, float]:
    started = time.monotonic()
    result = await session.download(torrent, directory, f"{hub}/announce", timeout=120)
    matched = await trio.to_thread.run_sync(sha256, result.path) == want
    seconds = time.monotonic() - started
    await session.remove(result.info_hash_v1)
    shutil.rmtree(directory)
    return not matched, seconds


async def bench(downloads: int, mib: int, hogs: int, disk: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-false-mismatch-") as name:
        tmp = Path(name)
        payload, torrent_file = make_payload(tmp / "hub", mib * MiB)
        torrent, want = torrent_file.read_bytes(), sha256(payload)
        modes: dict[str, PeerSession] = {
            "baseline (hash at is_seeding)": HashAtSeeding(
                f"127.0.0.31:{free_port('127.0.0.31')}"),
            "on disk (flush, then hash)": PeerSession(f"127.0.0.32:{free_port('127.0.0.32')}"),
        }
        mismatches = dict.fromkeys(modes, 0)
        seconds: dict[str, list[float]] = {mode: [] for mode in modes}
        with processes(tmp) as procs, cpu_hogs(hogs), disk_hogs(disk, tmp):
            hub = start_hub(procs, payload, torrent_file)
            await wait_for_seeder(hub)
            async with trio.open_nursery() as nursery:
                for session in modes.values():
                    await nursery.start(session.run)
                for n in range(downloads):
                    for mode, session in modes.items():
                        bad, took = await one_download(session, torrent, tmp / f"d{n}", hub, want)
                        mismatches[mode] += bad
                        seconds[mode].append(took)
                nursery.cancel_scope.cancel()
            for session in modes.values():
                session.close()
    baseline = next(iter(modes))
    base_mean = sum(seconds[baseline]) / downloads
    print(f"{downloads} downloads of {mib} MiB per mode, {hogs} CPU hogs, {disk} disk hogs, "
          "loopback")
    print(f"{'mode':32} {'false mismatches':>17} {'s/download':>11} {'ratio':>6}")
    for mode in modes:
        mean = sum(seconds[mode]) / downloads
        print(f"{mode:32} {mismatches[mode]:>10} of {downloads:<4} {mean:>11.2f} "
              f"{mean / base_mean:>6.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--downloads", type=int, default=15)
    parser.add_argument("--mib", type=int, default=64)
    parser.add_argument("--hogs", type=int, default=4)
    parser.add_argument("--disk-hogs", type=int, default=1)
    args = parser.parse_args()
    trio.run(bench, args.downloads, args.mib, args.hogs, args.disk_hogs)


if __name__ == "__main__":
    main()
