"""A hostile peer for tests: a real libtorrent session that seeds a CORRUPTED copy of a
payload, unthrottled, announcing itself to the tracker like any agent.

    python _corrupt_seeder.py --listen 127.0.0.9:P --torrent FILE --payload FILE \
        --tracker URL --workdir DIR

It copies the payload into DIR, flips one byte in every 16 KiB block, and adds the
torrent claiming every piece (`have_pieces`, as resume data would): libtorrent then
serves the file without hashing it. (Seed mode would not do: it checks each piece the
first time a peer asks, and would notice.) It runs until terminated.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import libtorrent as lt


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--listen", required=True)
    parser.add_argument("--torrent", required=True)
    parser.add_argument("--payload", required=True)
    parser.add_argument("--tracker", required=True)
    parser.add_argument("--workdir", required=True)
    args = parser.parse_args()
    info = lt.torrent_info(Path(args.torrent).read_bytes())
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    corrupt = workdir / info.name()
    shutil.copyfile(args.payload, corrupt)
    with corrupt.open("r+b") as data:
        for offset in range(0, info.total_size(), 16 * 1024):
            data.seek(offset)
            byte = data.read(1)
            data.seek(offset)
            data.write(bytes([byte[0] ^ 0xFF]))
    ip = args.listen.rpartition(":")[0]
    session = lt.session({
        "listen_interfaces": args.listen,
        "outgoing_interfaces": ip,
        "announce_ip": ip,
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
    })
    params = lt.add_torrent_params()
    params.ti = info
    params.save_path = str(workdir)
    params.have_pieces = [True] * info.num_pieces()
    params.flags = params.flags & ~lt.torrent_flags.auto_managed & ~lt.torrent_flags.paused
    params.trackers = [args.tracker]
    handle = session.add_torrent(params)
    while True:
        status = handle.status()
        print(f"state {status.state} seeding {status.is_seeding} uploaded "
              f"{status.total_payload_upload} peers {status.num_peers}", flush=True)
        time.sleep(1)


if __name__ == "__main__":
    main()
