"""Publishing a large payload against reading and hashing it once.

Baseline: one streaming SHA-256 pass over the file (what any publisher must do).
Measured: `publish_release` end to end (copy into the hub, SHA-256, hybrid v1+v2
torrent with its SHA-1 and SHA-256 piece trees, signing targets, snapshot, timestamp).
"""

from __future__ import annotations

import hashlib
import io
import os
import statistics
import tarfile
import tempfile
import time
from pathlib import Path

from hub.hub_dir import HubDir
from hub.hub_init import initialize_hub
from hub.releases.publisher import publish_release

SIZE_MIB = 256
ROUNDS = 3


def sha256_once(path: Path) -> float:
    started = time.perf_counter()
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while chunk := source.read(1 << 20):
            digest.update(chunk)
    return time.perf_counter() - started


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        blob = work / "blob.bin"
        with blob.open("wb") as out:
            for _ in range(SIZE_MIB):
                out.write(os.urandom(1 << 20))
        payload = work / "payload.tar"
        with tarfile.open(payload, "w") as archive:
            for name in ("i", "r"):
                info = tarfile.TarInfo(name)
                info.size, info.mode = 10, 0o755
                archive.addfile(info, io.BytesIO(b"#!/bin/sh\n\n"))
            archive.add(blob, "blob.bin")
        blob.unlink()
        baseline, measured, hashing, torrent = [], [], [], []
        for round_number in range(ROUNDS):
            baseline.append(sha256_once(payload))
            hub = HubDir(work / f"hub{round_number}")
            initialize_hub(hub, None, "127.0.0.1:1", "", "127.0.0.1:2")
            manifest = work / "RELEASE.toml"
            manifest.write_text(
                'name = "bench"\nversion = "1.0.0"\nseverity = "low"\ncategory = "bench"\n'
                '[install]\ntype = "command-pair"\ninstall = "i"\nrollback = "r"\n'
            )
            started = time.perf_counter()
            published = publish_release(hub, manifest, payload)
            measured.append(time.perf_counter() - started)
            hashing.append(published.hash_seconds)
            torrent.append(published.torrent_seconds)
        base = statistics.median(baseline)
        print(f"payload {SIZE_MIB} MiB, {ROUNDS} rounds, medians")
        print(f"  baseline: one SHA-256 pass          {base:6.2f} s   1.00x")
        print(f"  publish: SHA-256 pass inside        {statistics.median(hashing):6.2f} s "
              f"  {statistics.median(hashing) / base:4.2f}x")
        print(f"  publish: hybrid torrent             {statistics.median(torrent):6.2f} s "
              f"  {statistics.median(torrent) / base:4.2f}x")
        print(f"  publish: end to end (copy, sign)    {statistics.median(measured):6.2f} s "
              f"  {statistics.median(measured) / base:4.2f}x")


if __name__ == "__main__":
    main()
