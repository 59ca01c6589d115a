"""An in-process hub and agents for integration tests: the real HubServer (Hypercorn,
seeder, tracker) and the real AgentDaemon parts, on distinct loopback addresses.

Tests drive the daemon one cycle at a time (`daemon.cycle()`, `deliver_results()`)
rather than through its timers, so they are deterministic.
"""

from __future__ import annotations

import hashlib
import io
import socket
import tarfile
from dataclasses import dataclass
from pathlib import Path

import trio

from agent.config import AgentConfig
from agent.daemon import AgentDaemon
from agent.enrollment_flow import enroll
from hub.config import HubConfig
from hub.database import HubDatabase
from hub.hub_dir import HubDir
from hub.hub_init import initialize_hub
from hub.releases.publisher import publish_release
from hub.rollouts.changes import start_rollout
from hub.serve import HubServer


def free_port(address: str) -> int:
    with socket.socket() as probe:
        probe.bind((address, 0))
        return int(probe.getsockname()[1])


def tar_bytes(files: dict[str, bytes], modes: dict[str, int] | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = (modes or {}).get(name, 0o644)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def tree_state(root: Path) -> dict[str, tuple[int, bytes | str | None]]:
    """Every path under root: mode and content (or link target)."""
    state: dict[str, tuple[int, bytes | str | None]] = {}
    for path in sorted(root.rglob("*")):
        stat = path.lstat()
        if path.is_symlink():
            content: bytes | str | None = str(path.readlink())
        elif path.is_file():
            content = path.read_bytes()
        else:
            content = None
        state[path.relative_to(root).as_posix()] = (stat.st_mode, content)
    return state


@dataclass
class ServedHub:
    hub_dir: HubDir
    url: str
    token: str
    workdir: Path
    server: HubServer | None = None

    def publish(self, name: str, version: str, files: dict[str, bytes],
                health: str = "", root: str = "/opt/app", severity: str = "important",
                top_level: str = "") -> str:
        """Sign a file-tree release; `top_level` adds manifest keys (rollback, replaces)."""
        payload = self.workdir / f"{name}-{version}.tar"
        payload.write_bytes(tar_bytes(files))
        manifest = self.workdir / f"{name}-{version}.toml"
        manifest.write_text(
            f'name = "{name}"\nversion = "{version}"\nseverity = "{severity}"\n'
            f'category = "application"\n{top_level}'
            f'[install]\ntype = "file-tree"\nroot = "{root}"\n' + health
        )
        return publish_release(self.hub_dir, manifest, payload).target

    def rollout(self, release: str, group: str = "lab") -> None:
        start_rollout(self.hub_dir, release, group)

    def results(self) -> list[dict[str, str]]:
        database = HubDatabase(self.hub_dir.database)
        try:
            return [dict(row) for row in database.query("SELECT * FROM results")]
        finally:
            database.close()


async def start_hub(
    workdir: Path, nursery: trio.Nursery, address: str = "127.0.0.1", hub_toml: str = ""
) -> ServedHub:
    """A served hub; `hub_toml` is appended to its hub.toml (e.g. a shorter tracker
    interval)."""
    hub_dir = HubDir(workdir / "hub")
    port = free_port(address)
    created = initialize_hub(hub_dir, None, f"{address}:{port}", "",
                             f"{address}:{free_port(address)}")
    if hub_toml:
        with hub_dir.config_file.open("a", encoding="utf-8") as config:
            config.write("\n" + hub_toml)
    server = HubServer(hub_dir, HubConfig.load(hub_dir.config_file))
    await nursery.start(server.run)
    return ServedHub(hub_dir, f"http://{address}:{port}", created["token"], workdir, server)


async def start_agent(
    hub: ServedHub, nursery: trio.Nursery, name: str, address: str, group: str = "lab",
    site: str = "default",
) -> tuple[AgentDaemon, Path]:
    """An enrolled agent whose libtorrent session runs; returns it and its install prefix."""
    home = hub.workdir / name
    prefix = home / "root"
    prefix.mkdir(parents=True)
    config_file = home / "agent.toml"
    config_file.write_text(
        f'[agent]\nstate_dir = "{home / "state"}"\nname = "{name}"\ngroup = "{group}"\n'
        f'site = "{site}"\n'
        f'install_prefix = "{prefix}"\n[p2p]\nlisten = "{address}:{free_port(address)}"\n'
        "local_discovery = false\nweb_seed_after = 2\ndownload_timeout = 60\n"
    )
    config = AgentConfig.load(config_file)
    await enroll(config, hub.url, hub.token)
    daemon = AgentDaemon(config)
    await nursery.start(daemon.peers.run)
    return daemon, prefix


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
