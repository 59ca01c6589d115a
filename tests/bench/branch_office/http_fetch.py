"""The HTTP baseline's client: one agent fetching the payload from the hub over plain
HTTP, as a fleet without peer-to-peer would.

    python -m tests.bench.branch_office.http_fetch URL SHA256 OUT_FILE START_AT RESULT_JSON

Waits until the wall-clock time START_AT (so 32 of them start together, not staggered by
their interpreters' start-up), streams the body to OUT_FILE while hashing it, and writes
{"start": ..., "end": ..., "bytes": ..., "verified": bool} to RESULT_JSON.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path

import httpx


def main() -> None:
    url, expected, out, start_at, result = sys.argv[1:6]
    delay = float(start_at) - time.time()
    if delay > 0:
        time.sleep(delay)
    start = time.time()
    digest = hashlib.sha256()
    size = 0
    with httpx.stream("GET", url, timeout=1800) as response, open(out, "wb") as sink:
        response.raise_for_status()
        for chunk in response.iter_bytes(1 << 20):
            digest.update(chunk)
            sink.write(chunk)
            size += len(chunk)
    end = time.time()
    answer = {"start": start, "end": end, "bytes": size,
              "verified": digest.hexdigest() == expected}
    tmp = Path(result + ".tmp")
    tmp.write_text(json.dumps(answer))
    os.replace(tmp, result)


if __name__ == "__main__":
    main()
