"""One branch-office run: the real hub (`meisitong-hub serve`) in the hub namespace, real
agents (`meisitong-agent run`) each in its own namespace, one payload rolled out to all;
before that, the HTTP baseline through the same links.

Measured, per scheme:
- time: from the start (the `rollout start` command returning, or the moment every HTTP
  client starts) until the last agent has the verified payload (the agent journals
  `verified` after checking the file against the signed TUF target; the HTTP client after
  its own SHA-256 check). Meisitong's time includes the agents noticing the rollout
  (they poll metadata every `poll_interval` seconds).
- bytes sent by the hub: the hub namespace's WAN interfaces' tx counters (payload,
  headers, metadata, tracker answers: everything), and the hub process's own payload
  counters (seeder and web seed).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sqlite3
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.bench.branch_office.processes import BIN, Processes
from tests.bench.branch_office.topology import HUB_IP, Agent, Topology

HUB_URL = f"http://{HUB_IP}:8080"


@dataclass
class Settings:
    sites: int = 4
    agents_per_site: int = 8
    payload_mib: int = 64
    wan_mbit: float = 20.0
    lan_mbit: float = 200.0
    hub_peers_per_site: int = 1
    poll_interval: float = 2.0
    web_seed_after: float | None = None
    """None: the product default (agent/config.py)."""
    serve_before: float = 150.0
    """Seconds the hub has served before `rollout start`, at least: longer than one
    tracker interval (30 s) and than its expiry (105 s), as on a hub that has been up."""
    timeout: float = 1200.0
    verbosity: str = "-v"


def wait_until(what: str, check: Any, timeout: float, every: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s")
        time.sleep(every)


def make_payload(work: Path, mib: int) -> tuple[Path, Path]:
    """A tar holding `mib` MiB of random data, and its file-tree RELEASE.toml."""
    payload = work / "bench-payload.tar"
    with tarfile.open(payload, "w") as archive:
        blob = bytearray(os.urandom(mib << 20))
        info = tarfile.TarInfo("blob.bin")
        info.size = len(blob)
        archive.addfile(info, io.BytesIO(blob))
    release = work / "RELEASE.toml"
    release.write_text(
        'name = "branch-bench"\nversion = "1.0.0"\nseverity = "important"\n'
        'category = "bench"\n[install]\ntype = "file-tree"\nroot = "/opt/branch-bench"\n'
    )
    return payload, release


class BranchOfficeRun:
    def __init__(self, settings: Settings, work: Path, topology: Topology) -> None:
        self.s = settings
        self.work = work
        self.net = topology
        self.procs = Processes(work / "logs")
        self.hub_dir = work / "hub"
        self.hub_started = 0.0

    # set-up ----------------------------------------------------------------

    def start_hub(self) -> dict[str, Any]:
        hub = str(BIN / "meisitong-hub")
        init = json.loads(self.procs.run(
            "hub-init", None, hub, "init", "--dir", str(self.hub_dir), "--json",
            "--listen", f"{HUB_IP}:8080", "--seed-listen", f"{HUB_IP}:6881",
        ))
        with (self.hub_dir / "hub.toml").open("a") as config:
            config.write(f"\n[tracker]\nhub_peers_per_site = {self.s.hub_peers_per_site}\n")
        payload, release = make_payload(self.work, self.s.payload_mib)
        published = json.loads(self.procs.run(
            "hub-publish", None, hub, "publish", "--dir", str(self.hub_dir), "--json",
            str(release), str(payload), timeout=600,
        ))
        payload.unlink()
        self.procs.start("hub", self.net.hub_namespace, hub, self.s.verbosity, "serve",
                         "--dir", str(self.hub_dir))
        probe = [str(BIN / "python"), "-c",
                 f"import httpx; httpx.get('{HUB_URL}/api/v1/health', timeout=2)"
                 ".raise_for_status()"]

        def hub_answers() -> bool:
            try:
                self.procs.run("hub-probe", self.net.hub_namespace, *probe, timeout=10)
                return True
            except RuntimeError:
                return False

        wait_until("hub answering", hub_answers, 60, every=1)
        self.hub_started = time.monotonic()
        return {"token": init["token"], **published}

    def agent_home(self, agent: Agent) -> Path:
        return self.work / "agents" / f"s{agent.site}a{agent.index}"

    def enroll_agents(self, token: str) -> None:
        agents = self.net.agents()
        for agent in agents:
            home = self.agent_home(agent)
            (home / "root").mkdir(parents=True)
            (home / "agent.toml").write_text(
                f'[agent]\nstate_dir = "{home / "state"}"\nname = "s{agent.site}a{agent.index}"\n'
                f'group = "branch"\nsite = "site{agent.site}"\n'
                f"poll_interval = {self.s.poll_interval}\n"
                f'install_prefix = "{home / "root"}"\n'
                f'[hub]\nurl = "{HUB_URL}"\n'
                f'[p2p]\nlisten = "{agent.ip}:6881"\nlocal_discovery = true\n'
                f"seed_time = 3600\ndownload_timeout = {self.s.timeout}\n"
                + (f"web_seed_after = {self.s.web_seed_after}\n"
                   if self.s.web_seed_after is not None else "")
            )
        for batch in range(0, len(agents), 8):
            names = []
            for agent in agents[batch : batch + 8]:
                name = f"enroll-s{agent.site}a{agent.index}"
                self.procs.start(name, agent.namespace, str(BIN / "meisitong-agent"), "enroll",
                                 "--config", str(self.agent_home(agent) / "agent.toml"),
                                 "--token", token)
                names.append(name)
            for name in names:
                if self.procs.procs[name].wait(timeout=120) != 0:
                    raise RuntimeError(f"{name} failed: {self.procs.tail(name)}")
                self.procs.procs.pop(name)

    def hub_payload_counters(self) -> dict[str, int]:
        with sqlite3.connect(f"file:{self.hub_dir / 'hub.db'}?mode=ro", uri=True) as db:
            rows = db.execute("SELECT channel, sum(bytes) FROM transfer_stats GROUP BY channel")
            return {channel: int(total) for channel, total in rows}

    # (b) plain HTTP ------------------------------------------------------------

    def http_baseline(self, published: dict[str, Any]) -> dict[str, Any]:
        agents = self.net.agents()
        start_at = time.time() + 5 + 0.2 * len(agents)
        url = f"{HUB_URL}/payloads/{published['target']}"
        wan_before = self.net.hub_wan_tx_bytes()
        results = {}
        for agent in agents:
            home = self.agent_home(agent)
            results[agent] = home / "http-result.json"
            self.procs.start(
                f"http-s{agent.site}a{agent.index}", agent.namespace, str(BIN / "python"), "-m",
                "tests.bench.branch_office.http_fetch", url, published["sha256"],
                str(home / "http-payload"), str(start_at), str(results[agent]),
            )
        wait_until("every HTTP client done",
                   lambda: all(p.exists() for p in results.values()), self.s.timeout, every=1)
        answers = [json.loads(p.read_text()) for p in results.values()]
        for agent in agents:
            (self.agent_home(agent) / "http-payload").unlink(missing_ok=True)
        self.procs.stop([n for n in list(self.procs.procs) if n.startswith("http-")])
        return {
            "seconds": max(a["end"] for a in answers) - start_at,
            "all_verified": all(a["verified"] for a in answers),
            "hub_wan_bytes": self.net.hub_wan_tx_bytes() - wan_before,
            "hub_payload_bytes": sum(a["bytes"] for a in answers),
        }

    # (a) Meisitong -------------------------------------------------------------

    def journal_rows(self, agent: Agent, sql: str) -> list[tuple[Any, ...]]:
        path = self.agent_home(agent) / "state" / "journal.db"
        if not path.exists():
            return []
        try:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as db:
                return db.execute(sql).fetchall()
        except sqlite3.OperationalError:
            return []

    def meisitong(self, published: dict[str, Any]) -> dict[str, Any]:
        agents = self.net.agents()
        for agent in agents:
            self.procs.start(f"agent-s{agent.site}a{agent.index}", agent.namespace,
                             str(BIN / "meisitong-agent"), self.s.verbosity, "run",
                             "--config", str(self.agent_home(agent) / "agent.toml"))

        def all_refreshed() -> bool:
            return all(self.journal_rows(
                a, "SELECT 1 FROM agent_status WHERE key = 'metadata' AND value LIKE 'refreshed%'"
            ) for a in agents)

        wait_until("every agent has refreshed its metadata once", all_refreshed, 180, every=1)
        served = time.monotonic() - self.hub_started
        if served < self.s.serve_before:
            time.sleep(self.s.serve_before - served)
        served = time.monotonic() - self.hub_started
        wan_before = self.net.hub_wan_tx_bytes()
        counters_before = self.hub_payload_counters()
        self.procs.run("rollout", None, str(BIN / "meisitong-hub"), "rollout", "start",
                       "--dir", str(self.hub_dir), published["name"], "--group", "branch",
                       "--stages", "100")
        started = time.time()
        verified_at: dict[Agent, float] = {}
        downloading_at: dict[Agent, float] = {}

        def all_verified() -> bool:
            for agent in agents:
                if agent in verified_at:
                    continue
                for (detail,) in self.journal_rows(agent, "SELECT detail FROM deployments"):
                    at = json.loads(detail).get("at", {})  # agent/deployment_detail.py
                    if "verified" in at:
                        verified_at[agent] = float(at["verified"])
                        downloading_at[agent] = float(at.get("downloading", started))
            return len(verified_at) == len(agents)

        try:
            wait_until("every agent verified the payload", all_verified, self.s.timeout)
        except TimeoutError as exc:
            missing = [f"s{a.site}a{a.index}" for a in agents if a not in verified_at]
            raise TimeoutError(f"{exc}; still missing: {', '.join(missing)}") from None
        wan_after = self.net.hub_wan_tx_bytes()
        time.sleep(3)  # the hub flushes its payload counters every 2 s
        counters_after = self.hub_payload_counters()
        hub_sent = {
            channel: counters_after.get(channel, 0) - counters_before.get(channel, 0)
            for channel in ("seeder", "web-seed")
        }
        return {
            "hub_served_before_rollout": served,
            "gateways": self.gateways(),
            "seconds": max(verified_at.values()) - started,
            "first_download_started_after": min(downloading_at.values()) - started,
            "last_download_started_after": max(downloading_at.values()) - started,
            "hub_wan_bytes": wan_after - wan_before,
            "hub_payload_bytes": sum(hub_sent.values()),
            "hub_payload_by_channel": hub_sent,
            "sites": self.site_status(),
        }

    def gateways(self) -> dict[str, list[str]]:
        """Per site, the agents that received payload bytes from the hub (its seeder or
        web seed), from their journals: the site's gateways, plus any agent whose web
        seed fallback fired."""
        by_site: dict[str, list[str]] = {}
        for agent in self.net.agents():
            names = by_site.setdefault(f"site{agent.site}", [])
            for (detail,) in self.journal_rows(agent, "SELECT detail FROM deployments"):
                if int(json.loads(detail).get("bytes_from_hub", 0)) > 0:
                    names.append(f"s{agent.site}a{agent.index}")
        return by_site

    def site_status(self) -> list[dict[str, Any]]:
        """Per site bytes from hub / from peers, as `meisitong-hub status` shows them, once
        the agents' signed results have reached the hub (or after 60 s)."""

        def report() -> dict[str, Any]:
            text = self.procs.run("hub-status", None, str(BIN / "meisitong-hub"), "status",
                                  "--dir", str(self.hub_dir), "--json")
            return json.loads(text)

        def all_reported() -> bool:
            sites = report()["releases"][0]["sites"]
            return sum(site["reported"] for site in sites) == len(self.net.agents())

        with contextlib.suppress(TimeoutError):
            wait_until("every result at the hub", all_reported, 60, every=2)
        return list(report()["releases"][0]["sites"])
