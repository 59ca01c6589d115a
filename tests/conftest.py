"""Fixtures several test folders use: a hub directory and its TUF repository over HTTP."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from hub.hub_dir import HubDir


@pytest.fixture
def hub_dir(tmp_path: Path) -> HubDir:
    """Where a hub would live, not yet created: the test makes what it needs there."""
    return HubDir(tmp_path / "hub")


@pytest.fixture
def served_requests() -> list[str]:
    """The paths `served` was asked for, in order (its access log, kept instead of
    printed)."""
    return []


@pytest.fixture
def served(hub_dir: HubDir, served_requests: list[str]) -> Iterator[str]:
    """The hub's repository directory over real HTTP: /metadata/ and /targets/ map to its
    subdirectories, as any static web server or CDN would serve them. (A thread, not
    trio: the TUF client under test is synchronous and the tests are too.)"""

    class RecordingHandler(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            served_requests.append(self.path)

    hub_dir.repository.mkdir(parents=True, exist_ok=True)
    handler = functools.partial(RecordingHandler, directory=str(hub_dir.repository))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()
