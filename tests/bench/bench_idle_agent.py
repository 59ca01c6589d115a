"""An idle agent's footprint against a bare trio process measured in the same run.

Setting: a real hub (tests.fleet.start_hub, in this process) and two enrolled agents,
each `meisitong-agent run` in its own process on its own loopback address, with
nothing to download or seed: one at the default poll interval (60 s), one at 10 s, and
one at the default poll with `[metrics]` on (loopback listener, scraped every 15 s by
this process, and a textfile rewritten every 15 s: what prometheus_client adds). The
baseline is `python -c "import trio; trio.run(trio.sleep, …)"` started beside them.
Over WINDOW seconds (after the agents' first cycle) it samples each process's RSS and
reads its CPU time from /proc, then prints RSS (and PSS, shared pages divided among the
processes mapping them) and CPU % against the baseline.

Then the 10 s agent is given a rollout; once it has installed, delivered and dropped its
libtorrent session, its RSS is measured again: what a rollout leaves behind (an
imported extension module stays loaded).

Last, an import-cost breakdown: for each heavy module, the RSS a fresh `import trio`
process gains by importing it (each in its own process, so shared dependencies count
for every module that pulls them in), and a thin-supervisor floor (trio, sqlite3,
urllib3: what a process that only polls and starts a worker would hold).

Run: `python -m tests.bench.bench_idle_agent` (or `make bench`).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import trio

from agent.config import AgentConfig
from agent.enrollment_flow import enroll
from tests.fleet import ServedHub, free_port, start_hub
from tests.proc_stats import MIB, cpu_seconds, maps_file, pss_bytes, rss_bytes, thread_count

WINDOW = 75.0
"""Seconds measured: more than one default poll interval."""
SAMPLE_EVERY = 1.0
AGENT_BIN = str(Path(sys.executable).parent / "meisitong-agent")
HEAVY_IMPORTS = [
    "pydantic", "cryptography.x509", "tuf.ngclient", "httpx", "libtorrent", "psutil",
    "agent.wire", "agent.config", "agent.metadata_client", "agent.gossip", "agent.daemon",
    "prometheus_client", "agent.metrics.exporter",
]
SUPERVISOR_FLOOR = "sqlite3, urllib3"
_RSS_AFTER = (
    "import sys, trio\n"
    "def rss():\n"
    "    for line in open('/proc/self/status'):\n"
    "        if line.startswith('VmRSS:'):\n"
    "            return int(line.split()[1]) * 1024\n"
    "before = rss()\n"
    "exec('import ' + sys.argv[1])\n"
    "print(rss() - before, rss())\n"
)


@dataclass
class Watched:
    name: str
    process: trio.Process
    cpu_start: float = 0.0
    cpu_end: float = 0.0
    rss: list[int] = field(default_factory=list)
    pss: int = 0
    threads: int = 0

    @property
    def pid(self) -> int:
        return self.process.pid

    def cpu_percent(self, seconds: float) -> float:
        return 100.0 * (self.cpu_end - self.cpu_start) / seconds


async def enrolled_agent(hub: ServedHub, name: str, address: str, poll: float | None,
                         extra: str = "") -> Path:
    home = hub.workdir / name
    (home / "root").mkdir(parents=True)
    config = home / "agent.toml"
    poll_line = "" if poll is None else f"poll_interval = {poll}\n"
    config.write_text(
        f'[agent]\nstate_dir = "{home / "state"}"\nname = "{name}"\ngroup = "lab"\n'
        f'install_prefix = "{home / "root"}"\n{poll_line}'
        f'[p2p]\nlisten = "{address}:{free_port(address)}"\nseed_time = 5\n'
        '[lifecycle]\nreboot = "restart-agent"\n' + extra
    )
    await enroll(AgentConfig.load(config), hub.url, hub.token)
    return config


async def start_agent(config: Path) -> trio.Process:
    log = (config.parent / "agent.log").open("ab")
    return await trio.lowlevel.open_process(
        [AGENT_BIN, "-v", "run", "--config", str(config)], stdout=log, stderr=subprocess.STDOUT
    )


def journal_status(config: Path) -> dict[str, str]:
    result = subprocess.run(
        [AGENT_BIN, "status", "--json", "--config", str(config)],
        capture_output=True, text=True, check=False,
    )
    try:
        return dict(json.loads(result.stdout).get("status", {}))
    except ValueError:
        return {}


async def wait_for(what: str, condition, timeout: float = 120.0) -> None:  # type: ignore[no-untyped-def]
    with trio.fail_after(timeout):
        while not await trio.to_thread.run_sync(condition):
            await trio.sleep(0.5)
    print(f"  ({what})", flush=True)


async def scrape_every(url: str, seconds: float) -> None:
    """What a Prometheus server does to an agent's listener."""
    while True:
        await trio.to_thread.run_sync(lambda: urllib.request.urlopen(url, timeout=10).read())
        await trio.sleep(seconds)


async def measure(watched: list[Watched], seconds: float) -> None:
    for w in watched:
        w.cpu_start, w.rss = cpu_seconds(w.pid), []
    end = trio.current_time() + seconds
    while trio.current_time() < end:
        for w in watched:
            w.rss.append(rss_bytes(w.pid))
        await trio.sleep(SAMPLE_EVERY)
    for w in watched:
        w.cpu_end, w.pss, w.threads = cpu_seconds(w.pid), pss_bytes(w.pid), thread_count(w.pid)


def report(watched: list[Watched], seconds: float, title: str) -> None:
    base = watched[0]
    base_rss = statistics.median(base.rss)
    base_cpu = max(base.cpu_percent(seconds), 1e-9)
    print(f"\n{title} ({seconds:.0f} s, RSS sampled every {SAMPLE_EVERY:.0f} s)")
    print(f"  {'process':<34} {'RSS med':>8} {'RSS max':>8} {'PSS':>7} {'x base':>7} "
          f"{'CPU %':>7} {'threads':>7} libtorrent")
    for w in watched:
        median = statistics.median(w.rss)
        print(
            f"  {w.name:<34} {median / MIB:6.1f} M {max(w.rss) / MIB:6.1f} M "
            f"{w.pss / MIB:5.1f} M {median / base_rss:6.2f}x {w.cpu_percent(seconds):6.3f} "
            f"{w.threads:>7} {'mapped' if maps_file(w.pid, 'libtorrent') else 'no'}"
        )
    print(f"  (baseline CPU {base_cpu:.3f} %; CPU ratios to a near-zero baseline mean little)")


def import_costs() -> None:
    print("\nimport cost: RSS gained by a fresh `import trio` process importing X "
          "(each its own process)")
    rows = []
    for module in [*HEAVY_IMPORTS, SUPERVISOR_FLOOR]:
        out = subprocess.run([sys.executable, "-c", _RSS_AFTER, module], capture_output=True,
                             text=True, check=True).stdout.split()
        rows.append((module, int(out[0]), int(out[1])))
    for module, delta, total in rows:
        label = f"thin supervisor floor ({module})" if module == SUPERVISOR_FLOOR else module
        print(f"  {label:<40} +{delta / MIB:5.1f} MiB  (process {total / MIB:5.1f} MiB)")


async def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        async with trio.open_nursery() as nursery:
            hub = await start_hub(work, nursery)
            default_cfg = await enrolled_agent(hub, "idle-default", "127.0.0.61", None)
            fast_cfg = await enrolled_agent(hub, "idle-10s", "127.0.0.62", 10.0)
            metrics_port = free_port("127.0.0.1")
            metrics_cfg = await enrolled_agent(
                hub, "idle-metrics", "127.0.0.63", None,
                f'[metrics]\nlisten = "127.0.0.1:{metrics_port}"\n'
                f'textfile = "{work / "idle-metrics" / "meisitong.prom"}"\ninterval = 15\n')
            baseline = await trio.lowlevel.open_process(
                [sys.executable, "-c", "import trio; trio.run(trio.sleep, 3600)"])
            agents = [await start_agent(default_cfg), await start_agent(fast_cfg),
                      await start_agent(metrics_cfg)]
            try:
                for cfg in (default_cfg, fast_cfg, metrics_cfg):
                    await wait_for(f"{cfg.parent.name}: first cycle done", lambda c=cfg: (
                        journal_status(c).get("metadata", "").startswith(("refreshed",
                                                                          "unchanged"))))
                nursery.start_soon(scrape_every, f"http://127.0.0.1:{metrics_port}/metrics", 15)
                await trio.sleep(3)  # let the first cycle's garbage settle
                watched = [Watched("baseline: python -c 'import trio'", baseline),
                           Watched("agent, default poll (60 s), idle", agents[0]),
                           Watched("agent, 10 s poll, idle", agents[1]),
                           Watched("agent, default poll, metrics on", agents[2])]
                await measure(watched, WINDOW)
                report(watched, WINDOW, "idle agents against a bare trio process")

                release = hub.publish("idleapp", "1.0", {"hello.txt": b"hello " * 20000})
                hub.rollout(release)
                await wait_for("the agents installed it, the hub has their results",
                               lambda: len(hub.results()) >= 3, timeout=180)
                await wait_for("both agents dropped their libtorrent session", lambda: all(
                    journal_status(c).get("p2p", "").startswith("no libtorrent")
                    for c in (default_cfg, fast_cfg, metrics_cfg)))
                await trio.sleep(3)
                after = [watched[0], Watched("agent, 10 s poll, after a rollout", agents[1]),
                         Watched("agent, default poll, after a rollout", agents[0]),
                         Watched("agent, metrics on, after a rollout", agents[2])]
                await measure(after, 30.0)
                report(after, 30.0, "after a rollout, libtorrent session dropped")
            finally:
                for process in [baseline, *agents]:
                    process.terminate()
                    await process.wait()
                nursery.cancel_scope.cancel()
    import_costs()


if __name__ == "__main__":
    trio.run(main)
