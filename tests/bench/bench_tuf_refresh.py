"""An agent's TUF refresh against the cheapest possible request to the same server.

Baseline: one HTTP GET of timestamp.json (urllib3, the library ngclient uses).
Measured: a first refresh by a new client (root, timestamp, snapshot, targets, verified
signatures and hashes) and a warm refresh by a client that already trusts everything.
"""

from __future__ import annotations

import functools
import statistics
import tempfile
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import urllib3

from agent.metadata_client import MetadataClient
from hub.hub_dir import HubDir
from hub.hub_init import initialize_hub
from hub.repository.tuf_repository import HubRepository

ROUNDS = 30


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        return None


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        hub = HubDir(work / "hub")
        initialize_hub(hub, None, "127.0.0.1:1", "", "127.0.0.1:2")
        root = HubRepository(hub).root_bytes()
        server = ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(hub.repository))
        )
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        url = f"http://127.0.0.1:{server.server_address[1]}"
        try:
            pool = urllib3.PoolManager()
            baseline, first, warm = [], [], []
            for round_number in range(ROUNDS):
                started = time.perf_counter()
                pool.request("GET", f"{url}/metadata/timestamp.json").data
                baseline.append(time.perf_counter() - started)
                client_dir = work / f"client{round_number}"
                client = MetadataClient(client_dir / "m", client_dir / "t", url, root)
                started = time.perf_counter()
                client.refresh()
                first.append(time.perf_counter() - started)
                started = time.perf_counter()
                client.refresh()
                warm.append(time.perf_counter() - started)
        finally:
            server.shutdown()
        base = statistics.median(baseline)
        print(f"{ROUNDS} rounds over loopback HTTP, medians")
        print(f"  baseline: one GET of timestamp.json  {base * 1000:6.1f} ms   1.0x")
        for name, runs in (("first refresh (new client)", first), ("warm refresh", warm)):
            median = statistics.median(runs)
            print(f"  {name:<35}  {median * 1000:6.1f} ms  {median / base:4.1f}x")


if __name__ == "__main__":
    main()
