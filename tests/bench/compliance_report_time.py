"""How long the pure compliance report takes at fleet size: 10,000 devices in 4 groups,
3 releases (critical 72 h, important, low deferred), synthetic results (93 % installed,
2 % reverted, 5 % silent for days), 50 admin exceptions; then the renderers.

    python -m tests.bench.compliance_report_time [DEVICES]
"""

from __future__ import annotations

import random
import sys
import time
from datetime import UTC, datetime, timedelta

from agent.policy import Policy
from agent.wire.rollout import RolloutEntry
from hub.compliance import document, render
from hub.compliance.facts import (
    AdminException,
    ComplianceFacts,
    DeviceFact,
    ReleaseFact,
    ResultFact,
    RolloutFact,
)
from hub.compliance.report import compute_report

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
GROUPS = ("web", "db", "office", "kiosk")


def synthetic_facts(devices: int, seed: int = 7) -> ComplianceFacts:
    rng = random.Random(seed)
    now = T0 + timedelta(days=10)
    releases = [
        ReleaseFact("releases/ssl/3.0.1/ssl.tar", "ssl", "3.0.1", "critical", "security", T0),
        ReleaseFact("releases/kernel/6.1.9/k.tar", "kernel", "6.1.9", "important", "security",
                    T0 + timedelta(days=1)),
        ReleaseFact("releases/font/1.1/font.tar", "font", "1.1", "low", "application",
                    T0 + timedelta(days=2)),
    ]
    fleet = []
    for index in range(devices):
        offline = rng.random() < 0.05
        seen = now - (timedelta(days=rng.uniform(2, 6)) if offline
                      else timedelta(minutes=rng.uniform(0, 15)))
        fleet.append(DeviceFact(f"dev-{index:08x}", f"host-{index}", GROUPS[index % 4],
                                f"site-{index % 40}", seen))
    results = []
    for release in releases:
        for device in fleet:
            if device.last_seen is not None and now - device.last_seen > timedelta(days=1):
                continue
            hours = rng.lognormvariate(3.0, 0.6)
            outcome = "reverted" if rng.random() < 0.02 else "installed"
            results.append(ResultFact(device.device_id, release.target, outcome,
                                      "health check failed" if outcome == "reverted" else "",
                                      release.published_at + timedelta(hours=hours)))
    rollouts = {r.target: [RolloutFact(g, RolloutEntry(release=r.target,
                                                       started_at=r.published_at.isoformat()))
                           for g in GROUPS] for r in releases}
    policy = Policy.from_toml("deadline_hours = { critical = 72, important = 168, low = 720 }"
                              "\n[deferral]\ndays = 3\n", "bench policy")
    exceptions = [AdminException(fleet[i].device_id, releases[0].target, "lab",
                                 now + timedelta(days=5), "admin:bench") for i in range(50)]
    return ComplianceFacts("https://hub.bench", now, releases, rollouts, fleet, results,
                           dict.fromkeys(GROUPS, policy), exceptions)


def main() -> None:
    devices = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    facts = synthetic_facts(devices)
    started = time.perf_counter()
    report = compute_report(facts)
    computed = time.perf_counter()
    csv_text = render.to_csv(report)
    json_text = render.to_json(report)
    texts = time.perf_counter()
    html = document.to_html(report)
    htmled = time.perf_counter()
    pdf = document.to_pdf(report)
    pdfed = time.perf_counter()
    print(f"{devices} devices x {len(facts.releases)} releases: {len(report['rows'])} rows, "
          f"{len(facts.results)} results, {len(report['exceptions'])} exceptions")
    for summary in report["summary"]:
        print(f"  {summary['group']:<7} {summary['severity']:<9} share "
              f"{summary['share']:.4f} reachable {summary['reachable_share']:.4f} "
              f"mean {summary['mean_hours']} h p95 {summary['p95_hours']} h")
    print(f"report {computed - started:.2f} s; csv+json {texts - computed:.2f} s "
          f"({len(csv_text) + len(json_text)} chars); html {htmled - texts:.2f} s "
          f"({len(html)} chars); pdf {pdfed - htmled:.2f} s ({len(pdf)} bytes)")


if __name__ == "__main__":
    main()
