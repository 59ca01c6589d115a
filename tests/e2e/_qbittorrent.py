"""A stock qBittorrent (Debian's qbittorrent-nox, not built from this project) for
tests/e2e/test_standard_clients.py, driven through its WebUI API (v2).

It runs with a profile of its own under the test's directory, bound to one loopback
address for both BitTorrent and the WebUI, with DHT, local peer discovery, PEX, UPnP and
queueing off so the only ways to a payload are the .torrent's tracker and web seed. The
legal notice is accepted in the profile (qBittorrent 4.5 would otherwise ask on stdin),
and the WebUI skips authentication for clients on localhost: the WebUI listens on
127.0.0.x only. The process is ended by its PID.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

EXECUTABLE = "qbittorrent-nox"


def free_port(address: str) -> int:
    with socket.socket() as probe:
        probe.bind((address, 0))
        return int(probe.getsockname()[1])


def installed() -> bool:
    return shutil.which(EXECUTABLE) is not None


def _config(address: str, bt_port: int, webui_port: int, save_dir: Path) -> str:
    return f"""[LegalNotice]
Accepted=true

[BitTorrent]
Session\\AddTorrentPaused=false
Session\\AnonymousModeEnabled=false
Session\\DHTEnabled=false
Session\\DefaultSavePath={save_dir}
Session\\Interface=lo
Session\\InterfaceName=lo
Session\\InterfaceAddress={address}
Session\\LSDEnabled=false
Session\\PeXEnabled=false
Session\\Port={bt_port}
Session\\QueueingSystemEnabled=false
Session\\TempPathEnabled=false

[Network]
PortForwardingEnabled=false

[Preferences]
Connection\\UPnP=false
General\\Locale=en
WebUI\\Address={address}
WebUI\\CSRFProtection=false
WebUI\\HostHeaderValidation=false
WebUI\\LocalHostAuth=false
WebUI\\Port={webui_port}
WebUI\\UseUPnP=false
"""


class QBittorrent:
    """One qbittorrent-nox process; use as a context manager."""

    def __init__(self, workdir: Path, address: str) -> None:
        self.workdir = workdir
        self.address = address
        self.save_dir = workdir / "downloads"
        self.log = workdir / "qbittorrent.log"
        self.webui_port = free_port(address)
        self.bt_port = free_port(address)
        self.api = f"http://{address}:{self.webui_port}/api/v2"
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> QBittorrent:
        profile = self.workdir / "profile"
        config = profile / "qBittorrent" / "config" / "qBittorrent.conf"
        config.parent.mkdir(parents=True)
        self.save_dir.mkdir(parents=True)
        config.write_text(_config(self.address, self.bt_port, self.webui_port, self.save_dir))
        with self.log.open("wb") as log:
            self._process = subprocess.Popen(
                [EXECUTABLE, f"--profile={profile}", f"--webui-port={self.webui_port}"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**os.environ, "HOME": str(self.workdir)}, start_new_session=True,
            )
        deadline = time.monotonic() + 20
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(f"qbittorrent-nox exited at start: {self.log_tail()}")
            try:
                self.version = httpx.get(f"{self.api}/app/version", timeout=1).text
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"qbittorrent-nox WebUI not up after 20 s: {self.log_tail()}"
                    ) from None
                time.sleep(0.2)
        return self

    def __exit__(self, *_exc: object) -> None:
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""

    def add_torrent(self, torrent: bytes) -> None:
        answer = httpx.post(
            f"{self.api}/torrents/add",
            files={"torrents": ("payload.torrent", torrent, "application/x-bittorrent")},
            data={"savepath": str(self.save_dir), "paused": "false"},
            timeout=10,
        )
        if answer.text.strip() != "Ok.":
            raise RuntimeError(f"qBittorrent refused the torrent: {answer.status_code} "
                               f"{answer.text!r}")

    def torrents(self) -> list[dict[str, Any]]:
        answer = httpx.get(f"{self.api}/torrents/info", timeout=5)
        answer.raise_for_status()
        return list(answer.json())

    def trackers(self, info_hash: str) -> list[dict[str, Any]]:
        answer = httpx.get(f"{self.api}/torrents/trackers", params={"hash": info_hash},
                           timeout=5)
        answer.raise_for_status()
        return list(answer.json())

    def wait_complete(self, timeout: float) -> dict[str, Any]:
        """The one torrent, once qBittorrent has it all and checked it."""
        deadline = time.monotonic() + timeout
        last: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            last = self.torrents()
            if len(last) == 1 and last[0]["progress"] >= 1.0 and last[0]["state"] in (
                "uploading", "stalledUP", "pausedUP", "queuedUP", "forcedUP"
            ):
                return last[0]
            time.sleep(0.25)
        raise TimeoutError(f"qBittorrent did not complete in {timeout:.0f} s: {last}; "
                           f"log: {self.log_tail()}")
