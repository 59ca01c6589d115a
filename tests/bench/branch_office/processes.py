"""Processes the harness starts inside namespaces, each ended by its own PID.

`ip netns exec NS CMD` execs CMD in place, so the PID Popen returns is CMD's own.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
# The repository's venv, else the one running the harness (a git worktree has none).
BIN = REPO / ".venv" / "bin" if (REPO / ".venv").exists() else Path(sys.executable).parent


class Processes:
    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.logs.mkdir(parents=True, exist_ok=True)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, namespace: str | None, *argv: str) -> subprocess.Popen[bytes]:
        prefix = ["ip", "netns", "exec", namespace] if namespace else []
        with open(self.logs / f"{name}.log", "ab") as log:
            proc = subprocess.Popen(
                [*prefix, *argv], cwd=REPO, stdout=log, stderr=log,
                env={**os.environ, "PYTHONPATH": str(REPO)},
            )
        self.procs[name] = proc
        return proc

    def run(self, name: str, namespace: str | None, *argv: str, timeout: float = 120) -> str:
        """Run to completion; returns stdout; raises with the log on failure."""
        prefix = ["ip", "netns", "exec", namespace] if namespace else []
        result = subprocess.run(
            [*prefix, *argv], cwd=REPO, capture_output=True, text=True, timeout=timeout,
            env={**os.environ, "PYTHONPATH": str(REPO)}, check=False,
        )
        (self.logs / f"{name}.log").write_text(result.stdout + result.stderr)
        if result.returncode != 0:
            raise RuntimeError(f"{name}: exit {result.returncode}: {result.stderr[-2000:]}")
        return result.stdout

    def stop(self, names: list[str] | None = None, grace: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after `grace` seconds, each process by its PID."""
        chosen = [self.procs[n] for n in (names if names is not None else list(self.procs))]
        for proc in chosen:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in chosen:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        for name in names if names is not None else list(self.procs):
            self.procs.pop(name, None)

    def tail(self, name: str, chars: int = 3000) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""
