"""Branch-office benchmark: builds the topology with network namespaces, runs (b) plain
HTTP from the hub and (a) a Meisitong rollout through the same links, computes (c) the
Kumar–Ross bound, prints them side by side, and tears everything down.

    sudo .venv/bin/python -m tests.bench.branch_office            # 4 sites x 8 agents, 64 MiB
    sudo .venv/bin/python -m tests.bench.branch_office --sites 2 --agents 4 --mib 16

Needs root (namespaces, tc) and takes several minutes; not part of `make test`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.bench.branch_office.harness import BranchOfficeRun, Settings
from tests.bench.branch_office.kumar_ross import SiteLinks, http_from_hub_bound, kumar_ross_bound
from tests.bench.branch_office.topology import Topology

MiB = 1 << 20


def parse() -> tuple[Settings, argparse.Namespace]:
    p = argparse.ArgumentParser(prog="python -m tests.bench.branch_office")
    p.add_argument("--sites", type=int, default=4)
    p.add_argument("--agents", type=int, default=8, help="agents per site")
    p.add_argument("--mib", type=int, default=64, help="payload size")
    p.add_argument("--wan-mbit", type=float, default=20.0)
    p.add_argument("--lan-mbit", type=float, default=200.0)
    p.add_argument("--hub-peers-per-site", type=int, default=1)
    p.add_argument("--web-seed-after", type=float, default=None,
                   help="agents' web_seed_after (default: the product's)")
    p.add_argument("--serve-before", type=float, default=150.0,
                   help="seconds the hub serves before the rollout starts, at least")
    p.add_argument("--skip-http", action="store_true", help="skip the HTTP baseline")
    p.add_argument("--http-last", action="store_true",
                   help="run the HTTP baseline after the rollout instead of before")
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    p.add_argument("--debug", action="store_true", help="debug logs from hub and agents")
    args = p.parse_args()
    settings = Settings(
        sites=args.sites, agents_per_site=args.agents, payload_mib=args.mib,
        wan_mbit=args.wan_mbit, lan_mbit=args.lan_mbit,
        hub_peers_per_site=args.hub_peers_per_site, web_seed_after=args.web_seed_after,
        serve_before=args.serve_before,
        verbosity="-vv" if args.debug else "-v",
    )
    return settings, args


def bounds(settings: Settings, file_bytes: int) -> dict[str, float]:
    wan, lan = settings.wan_mbit * 1e6 / 8, settings.lan_mbit * 1e6 / 8
    sites = [SiteLinks(wan, [lan] * settings.agents_per_site, [lan] * settings.agents_per_site)
             for _ in range(settings.sites)]
    return {"kumar_ross": kumar_ross_bound(file_bytes, sites),
            "http_ideal": http_from_hub_bound(file_bytes, sites)}


def render(settings: Settings, file_bytes: int, summary: dict[str, Any]) -> str:
    bound = summary["bounds"]["kumar_ross"]
    n = settings.sites * settings.agents_per_site
    lines = [
        f"branch office: {settings.sites} sites x {settings.agents_per_site} agents = {n}, "
        f"payload {file_bytes / MiB:.1f} MiB, WAN {settings.wan_mbit:g} Mbit/s per site "
        f"(each way), LAN {settings.lan_mbit:g} Mbit/s per agent; bandwidth only, no delay "
        "(no netem in this kernel)",
        f"{'scheme':<34}{'time s':>9}{'x bound':>9}{'x HTTP':>8}{'hub bytes (WAN tx)':>22}"
        f"{'copies':>8}{'per site':>9}",
    ]
    http = summary.get("http")
    rows = [("(a) Meisitong", summary["meisitong"])]
    if http:
        rows.append(("(b) HTTP from the hub", http))
    for label, row in rows:
        copies = row["hub_wan_bytes"] / file_bytes
        vs_http = f"{row['seconds'] / http['seconds']:.2f}" if http else "-"
        lines.append(
            f"{label:<34}{row['seconds']:>9.1f}{row['seconds'] / bound:>9.2f}{vs_http:>8}"
            f"{row['hub_wan_bytes']:>22,}{copies:>8.2f}{copies / settings.sites:>9.2f}"
        )
    lines.append(f"{'(c) Kumar-Ross lower bound':<34}{bound:>9.1f}{1.0:>9.2f}"
                 f"{'':>8}{settings.sites * file_bytes:>22,}{settings.sites:>8.2f}{1.0:>9.2f}")
    m = summary["meisitong"]
    lines.append(
        f"Meisitong ({summary['order']}; the hub had served {m['hub_served_before_rollout']:.0f} s"
        f" before `rollout start`): hub payload counters {m['hub_payload_by_channel']}; agents"
        f" started downloading {m['first_download_started_after']:.1f}-"
        f"{m['last_download_started_after']:.1f} s after `rollout start`"
    )
    web_seed = settings.web_seed_after
    lines.append(
        f"agent web_seed_after: {'product default' if web_seed is None else f'{web_seed:g} s'}"
        f"; gateways per site (agents that received payload from the hub): "
        + ", ".join(f"{site} {len(names)} ({' '.join(names)})"
                    for site, names in m["gateways"].items())
    )
    for site in m["sites"]:
        lines.append(
            f"  {site['site']}: {site['reported']}/{site['devices']} reported, from hub "
            f"{site['from_hub'] / file_bytes:.2f} copies, from peers "
            f"{site['from_peers'] / file_bytes:.2f} copies"
        )
    return "\n".join(lines)


def main() -> None:
    settings, args = parse()
    if os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("tc"):
        sys.exit("needs root, `ip` and `tc` (network namespaces and traffic shaping)")
    work = Path(tempfile.mkdtemp(prefix="meisitong-branch-"))
    topology = Topology(f"mstb{os.getpid() % 100000}", settings.sites,
                        settings.agents_per_site, settings.wan_mbit, settings.lan_mbit)
    run = BranchOfficeRun(settings, work, topology)

    def interrupted(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupted)
    started = time.monotonic()
    try:
        topology.build()
        published = run.start_hub()
        file_bytes = int(published["length"])
        run.enroll_agents(published["token"])
        summary: dict[str, Any] = {"settings": settings.__dict__,
                                   "bounds": bounds(settings, file_bytes)}
        if not args.skip_http and not args.http_last:
            summary["http"] = run.http_baseline(published)
        summary["meisitong"] = run.meisitong(published)
        if not args.skip_http and args.http_last:
            summary["http"] = run.http_baseline(published)
        summary["order"] = ("Meisitong only" if args.skip_http else
                            "HTTP baseline last" if args.http_last else "HTTP baseline first")
        (work / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
        print(render(settings, file_bytes, summary))
        print(f"(harness wall time {time.monotonic() - started:.0f} s; work dir {work})")
    except BaseException:
        print(f"FAILED; logs in {work / 'logs'}", file=sys.stderr)
        args.keep = True
        raise
    finally:
        run.procs.stop()
        topology.teardown()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
