"""Run real agent processes against an in-process hub, kill them, start them again.

An agent here is `meisitong-agent run` in its own process (enrolled in-process first),
with its own state directory, install prefix and loopback address. The harness acts as
the service manager: it starts the agent again whenever it exits (SIGKILL by the crash
hook, exit code 75 for a "reboot"), as systemd's `Restart=always` does, and stops it
with SIGTERM once the hub holds its result.
"""

from __future__ import annotations

import io
import os
import signal
import sqlite3
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import trio

from agent.config import AgentConfig
from agent.enrollment_flow import enroll
from agent.lifecycle import TERMINAL
from agent.reboot import RESTART_EXIT_CODE
from hub.config import HubConfig
from hub.hub_dir import HubDir
from hub.hub_init import initialize_hub
from hub.releases.publisher import publish_release
from hub.serve import HubServer
from tests.fleet import ServedHub, free_port, sha256

T = TypeVar("T")
AGENT_BIN = str(Path(sys.executable).parent / "meisitong-agent")
_address_counter = iter(range(10, 250))


def next_address() -> str:
    return f"127.0.0.{next(_address_counter)}"


async def start_hub_published(
    workdir: Path, nursery: trio.Nursery, prepare: Callable[[ServedHub], T]
) -> tuple[ServedHub, T]:
    """tests.fleet.start_hub, with `prepare` (publish, start rollouts) run before the
    server starts: the hub seeds what exists at start before its stats loop runs, which
    avoids a race in hub/swarm/seeder.py (stats() iterates the torrents from a worker thread
    while a new release is being added)."""
    hub_dir = HubDir(workdir / "hub")
    port = free_port("127.0.0.1")
    created = initialize_hub(hub_dir, None, f"127.0.0.1:{port}", "",
                             f"127.0.0.1:{free_port('127.0.0.1')}")
    hub = ServedHub(hub_dir, f"http://127.0.0.1:{port}", created["token"], workdir)
    prepared = prepare(hub)
    await nursery.start(HubServer(hub_dir, HubConfig.load(hub_dir.config_file)).run)
    return hub, prepared


def publish(hub: ServedHub, name: str, version: str, payload: Path, manifest_toml: str) -> str:
    manifest = hub.workdir / f"{name}-{version}.toml"
    manifest.write_text(f'name = "{name}"\nversion = "{version}"\nseverity = "important"\n'
                        f'category = "application"\n' + manifest_toml)
    return publish_release(hub.hub_dir, manifest, payload).target


def write_tar(path: Path, files: dict[str, tuple[bytes, int]]) -> Path:
    with tarfile.open(path, "w") as archive:
        for name, (data, mode) in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, 1_700_000_000
            archive.addfile(info, io.BytesIO(data))
    return path


def file_hash_check(path: str, data: bytes) -> str:
    return f'[[health]]\ntype = "file-hash"\npath = "{path}"\nsha256 = "{sha256(data)}"\n' \
           "retries = 0\ntimeout = 5\n"


def command_check(argv: list[str], retries: int = 0, timeout: float = 5) -> str:
    quoted = ", ".join(f'"{item}"' for item in argv)
    return (f'[[health]]\ntype = "command"\nargv = [{quoted}]\nretries = {retries}\n'
            f'timeout = {timeout}\ninterval = 0.1\n')


@dataclass
class Agent:
    """One endpoint: its files, and the processes it ran."""

    hub: ServedHub
    name: str
    group: str
    home: Path
    address: str = field(default_factory=next_address)
    exit_codes: list[int] = field(default_factory=list)
    lifecycle: str = 'reboot = "restart-agent"\n'

    @property
    def prefix(self) -> Path:
        return self.home / "root"

    @property
    def state_dir(self) -> Path:
        return self.home / "state"

    @property
    def config_file(self) -> Path:
        return self.home / "agent.toml"

    async def enroll(self) -> str:
        self.prefix.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(
            f'[agent]\nstate_dir = "{self.state_dir}"\nname = "{self.name}"\n'
            f'group = "{self.group}"\ninstall_prefix = "{self.prefix}"\npoll_interval = 0.3\n'
            f'[p2p]\nlisten = "{self.address}:{free_port(self.address)}"\n'
            "local_discovery = false\nweb_seed_after = 0\nseed_time = 0\n"
            "download_timeout = 60\n"
            f"[lifecycle]\n{self.lifecycle}"
        )
        device_id, _status = await enroll(AgentConfig.load(self.config_file), self.hub.url,
                                          self.hub.token)
        self.device_id = device_id
        return device_id

    async def start(self, crash_after: str | None = None) -> trio.Process:
        env = {key: value for key, value in os.environ.items()
               if key != "MEISITONG_CRASH_AFTER"}
        if crash_after:
            env["MEISITONG_CRASH_AFTER"] = crash_after
        log = (self.home / "agent.log").open("ab")
        log.write(f"--- start, crash after {crash_after!r}\n".encode())
        log.flush()
        return await trio.lowlevel.open_process(
            [AGENT_BIN, "-v", "run", "--config", str(self.config_file)],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )

    # what the agent's journal and the hub say --------------------------------------

    def journal_rows(self, sql: str) -> list[tuple]:
        path = self.state_dir / "journal.db"
        if not path.exists():
            return []
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        try:
            return db.execute(sql).fetchall()
        except sqlite3.OperationalError:
            return []
        finally:
            db.close()

    def done(self) -> bool:
        """Every deployment finished, every result delivered, the hub holds one."""
        states = self.journal_rows("SELECT state FROM deployments")
        waiting = self.journal_rows("SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL")
        terminal = {state.value for state in TERMINAL}
        return bool(states) and all(s in terminal for (s,) in states) and waiting == [(0,)] \
            and bool(self.hub_results())

    def hub_results(self) -> list[dict[str, str]]:
        return [r for r in self.hub.results() if r["device_id"] == self.device_id]

    def transitions(self) -> list[tuple[str | None, str, str]]:
        return self.journal_rows("SELECT from_state, to_state, reason FROM transitions ORDER BY id")

    def leftovers(self) -> list[str]:
        """Snapshots, work files and temporary files the agent should have removed."""
        found = []
        for sub in ("snapshots", "work"):
            directory = self.state_dir / sub
            if directory.is_dir():
                found += [str(p) for p in directory.iterdir()]
        for path in self.state_dir.rglob("*"):
            if path.name.endswith((".tmp", ".partial")):
                found.append(str(path))
        for path in self.prefix.rglob("*"):
            if ".meisitong-" in path.name:
                found.append(str(path))
        return found


async def run_until(agent: Agent, crash_after: str | None, timeout: float,
                    stop_when_done: bool = True) -> int | None:
    """Start the agent; return its exit code if it exits by itself, or None if it was
    stopped (SIGTERM) because it was done."""
    process = await agent.start(crash_after)
    try:
        with trio.fail_after(timeout):
            while True:
                if process.poll() is not None:
                    agent.exit_codes.append(process.returncode)
                    return process.returncode
                if stop_when_done and await trio.to_thread.run_sync(agent.done):
                    process.send_signal(signal.SIGTERM)
                    await process.wait()
                    agent.exit_codes.append(process.returncode)
                    return None
                await trio.sleep(0.2)
    finally:
        if process.poll() is None:
            process.kill()
            await process.wait()


async def supervise(agent: Agent, crash_plan: list[str | None], timeout: float,
                    max_starts: int = 12) -> list[int | None]:
    """Start the agent as a service manager would, once per entry of `crash_plan` (then
    without a crash point), restarting it whenever it exits, until it is done."""
    codes: list[int | None] = []
    deadline = time.monotonic() + timeout
    for start in range(max_starts):
        crash = crash_plan[start] if start < len(crash_plan) else None
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"{agent.name}: not done after {timeout:.0f} s")
        code = await run_until(agent, crash, remaining)
        codes.append(code)
        if code is None:
            return codes
        if code not in (-signal.SIGKILL, RESTART_EXIT_CODE):
            raise AssertionError(f"{agent.name} exited with {code}; see {agent.home}/agent.log")
    raise AssertionError(f"{agent.name}: still not done after {max_starts} starts")
