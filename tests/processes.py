"""Real processes for end-to-end tests and the demo: the installed commands, a fleet
that starts them and ends only what it started (by PID), and small waits and probes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

BIN_DIR = Path(sys.executable).parent
BIN_HUB = str(BIN_DIR / "meisitong-hub")
BIN_AGENT = str(BIN_DIR / "meisitong-agent")


def free_port(address: str) -> int:
    with socket.socket() as probe:
        probe.bind((address, 0))
        return int(probe.getsockname()[1])


def wait_for(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def reachable(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=1):
            return True
    except OSError:
        return False


@dataclass
class Fleet:
    workdir: Path
    hub_dir: Path
    hub_url: str
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def command(self, *argv: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=300,
            env={**os.environ, "MEISITONG_HUB_DIR": str(self.hub_dir)},
        )
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[:3])} failed: {done.stderr.strip()[-2000:]}")
        return done

    def start(self, name: str, *argv: str) -> None:
        log = (self.workdir / f"{name}.log").open("wb")
        self.processes[name] = subprocess.Popen(
            list(argv), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def stop(self, name: str) -> None:
        """SIGTERM the process started as `name`, waited for (SIGKILL after 15 s)."""
        process = self.processes[name]
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def stop_all(self) -> None:
        """End only the processes this demo started, by PID."""
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def serve_new_hub(self, server_settings: dict[str, Any] | None = None) -> str:
        """`meisitong-hub init` at `hub_dir`, listening at `hub_url` (its seeder on a free
        port of the same address), then `serve` (process "hub"), waited for until it
        listens. `server_settings` are added to hub.toml's [server] table (TLS, trusted
        proxies). Returns the enrollment token `init` wrote."""
        url = urlsplit(self.hub_url)
        address, port = str(url.hostname), int(url.port or 80)
        self.command(BIN_HUB, "init", "--listen", f"{address}:{port}",
                     "--seed-listen", f"{address}:{free_port(address)}")
        if server_settings:
            config = self.hub_dir / "hub.toml"
            lines = "".join(f"{key} = {json.dumps(value)}\n"
                            for key, value in server_settings.items())
            config.write_text(config.read_text().replace("[server]\n", f"[server]\n{lines}", 1))
        token = (self.hub_dir / "enrollment-token").read_text().strip()
        self.start("hub", BIN_HUB, "serve", "--dir", str(self.hub_dir))
        wait_for(lambda: reachable(address, port), 30, "the hub to listen")
        return token

    def hub_status(self) -> dict[str, Any]:
        return json.loads(self.command(BIN_HUB, "status", "--json").stdout)
