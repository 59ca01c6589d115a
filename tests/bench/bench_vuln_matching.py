"""Vulnerability matching: 1,000 devices x 3,000 packages against a tracker-sized feed.

The feed is generated as the Debian security tracker's JSON, at its real size: about
40,000 CVEs over 5,000 source packages, skewed as the real one is (a few sources such as
the kernel carry thousands of CVEs, most a handful), each with bullseye, bookworm,
trixie and sid entries (resolved at an old version, at a recent `+debNuM`, fixed in 0,
open, undetermined). It is written to a file, imported through `vulns import`'s code
into a real hub database (hub.vulns.store), and the index loaded back from it.

Devices (90% bookworm, 10% bullseye) install 3,000 binaries of about 1,500 sources,
1,000 of which the feed knows; each device is at one of three patch levels per source,
as a fleet updated at different times is. Printed: import and index-loading time, and
matching time for the fleet with the current Matcher.match_fleet (verdicts computed once
per (release, source, source version), findings once per (group, package), naming the
devices) against the baseline of the same run: matching without that memo (every
device's every package judged afresh, a finding per device), timed on 50 devices and
scaled to 1,000, and the memo with a finding per device; then the report's rows per
vulnerability x group (10 groups). Nothing is read from inventories in the store
here: the devices are built in memory (reading 1,000 inventories is the inventory
store's own cost).

    python -m tests.bench.bench_vuln_matching [--devices 1000] [--packages 3000] \\
        [--cves 40000] [--sources 5000]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

from hub.database import HubDatabase
from hub.inventory.software import DeviceSoftware, InstalledPackage, OperatingSystem
from hub.vulns.exposure import DeviceInfo, exposure_report
from hub.vulns.feed_files import read_feeds
from hub.vulns.matching import EXPOSED, FeedIndex, Matcher, judge
from hub.vulns.store import advisory_infos, debian_statements, import_advisories

RELEASES = {"bullseye": "deb11", "bookworm": "deb12", "trixie": "", "sid": ""}


def base_version(source: int) -> str:
    epoch = "1:" if source % 17 == 0 else ""
    return f"{epoch}{source % 7 + 1}.{source % 13}.{source % 5}"


def release_version(source: int, release: str, level: int) -> str:
    """The source's version in `release` at patch level 0..2."""
    upstream = base_version(source)
    if release == "bullseye":
        return f"{upstream.replace('.', '.', 1)}-2" + (f"+deb11u{level}" if level else "")
    return f"{upstream}-4" + (f"+deb12u{level}" if level else "")


def tracker_entry(rng: random.Random, source: int) -> dict:
    releases = {}
    for release, tag in RELEASES.items():
        roll = rng.random()
        if release in ("trixie", "sid"):
            entry = {"status": "resolved", "fixed_version": f"{base_version(source)}-5",
                     "urgency": "not yet assigned"}
        elif roll < 0.10:
            entry = {"status": "resolved", "fixed_version": "0", "urgency": "not yet assigned"}
        elif roll < 0.50:
            entry = {"status": "resolved", "fixed_version": "0.9-1", "urgency": "low"}
        elif roll < 0.80:
            level = rng.randint(1, 3)
            upstream = base_version(source)
            revision = "-2" if release == "bullseye" else "-4"
            entry = {"status": "resolved", "fixed_version": f"{upstream}{revision}+{tag}u{level}",
                     "urgency": rng.choice(("low", "medium", "high", "not yet assigned"))}
        elif roll < 0.95:
            entry = {"status": "open", "urgency": "unimportant", "nodsa": "Minor issue",
                     "nodsa_reason": "postponed"}
        else:
            entry = {"status": "undetermined", "urgency": "not yet assigned"}
        entry["repositories"] = {release: release_version(source, release, 1)
                                 if release in ("bullseye", "bookworm") else "9.9-1"}
        releases[release] = entry
    return {"description": "A flaw in a package that the benchmark made up.",
            "scope": "remote", "releases": releases}


def write_feed(path: Path, cves: int, sources: int, seed: int = 1) -> None:
    rng = random.Random(seed)
    weights = [1 / (rank + 1) ** 1.1 for rank in range(sources)]
    feed: dict[str, dict] = {}
    for number in range(cves):
        cve = f"CVE-{2000 + number // 10000}-{number % 10000:05d}"
        affected = {rng.choices(range(sources), weights)[0]}
        if rng.random() < 0.3:  # a CVE of several sources (a bundled library)
            affected.add(rng.randrange(sources))
        for source in affected:
            feed.setdefault(f"src{source}", {})[cve] = tracker_entry(rng, source)
    path.write_text(json.dumps(feed))


def make_fleet(devices: int, packages: int, feed_sources: int, seed: int = 2
               ) -> list[DeviceSoftware]:
    rng = random.Random(seed)
    # 1,500 sources: 1,000 the feed knows (spread over its ranks), 500 it does not
    known = sorted(rng.sample(range(feed_sources), min(1000, feed_sources)))
    sources = [(f"src{s}", s) for s in known] + [(f"quiet{n}", 100000 + n) for n in range(500)]
    binaries = []
    for name, number in sources:
        for index in range(rng.choice((1, 2, 2, 3, 3, 4))):
            binaries.append((f"{name}-bin{index}", name, number))
    fleet = []
    for device in range(devices):
        release = "bullseye" if device % 10 == 0 else "bookworm"
        os = OperatingSystem("debian", "11" if release == "bullseye" else "12", release)
        level = {name: rng.choice((0, 1, 2)) for name, _ in sources}
        chosen = rng.sample(binaries, min(packages, len(binaries)))
        rows = []
        for binary, name, number in chosen:
            version = release_version(number, release, level[name])
            rows.append(InstalledPackage(binary, version + ("+b1" if number % 23 == 0 else ""),
                                         "amd64", name, version))
        fleet.append(DeviceSoftware(f"device-{device}", os, "6.1.0", "x86_64", tuple(rows)))
    return fleet


class UnmemoizedMatcher(Matcher):
    """The baseline: every package of every device judged afresh."""

    def exposures(self, release, source, version):
        found = []
        for record_id, statement in self.index.about(release, source):
            try:
                judgement = judge(statement, version)
            except ValueError:
                continue
            if judgement.verdict in EXPOSED:
                found.append((record_id, statement, judgement))
        return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--packages", type=int, default=3000)
    parser.add_argument("--cves", type=int, default=40000)
    parser.add_argument("--sources", type=int, default=5000)
    parser.add_argument("--baseline-devices", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        feed = Path(scratch) / "tracker.json"
        started = time.perf_counter()
        write_feed(feed, args.cves, args.sources)
        generated = time.perf_counter() - started
        database = HubDatabase.create(Path(scratch) / "hub.db")
        try:
            started = time.perf_counter()
            advisories = read_feeds([feed])
            summary = import_advisories(database, advisories, [str(feed)], "bench")
            imported = time.perf_counter() - started
            started = time.perf_counter()
            again = import_advisories(database, read_feeds([feed]), [str(feed)], "bench")
            reimported = time.perf_counter() - started
            started = time.perf_counter()
            index = FeedIndex(debian_statements(database))
            loaded = time.perf_counter() - started
            infos = advisory_infos(database)
        finally:
            database.close()
        size_mb = feed.stat().st_size / 1e6
    fleet = make_fleet(args.devices, args.packages, args.sources)
    devices = {software.device_id: DeviceInfo(software.device_id, software.device_id,
                                              f"group-{number % 10}")
               for number, software in enumerate(fleet)}
    group_of = {device_id: device.group for device_id, device in devices.items()}
    started = time.perf_counter()
    matcher = Matcher(index)
    findings = matcher.match_fleet(fleet, group_of)
    matched = time.perf_counter() - started
    started = time.perf_counter()
    rows = exposure_report(findings, infos, devices, [])
    reported = time.perf_counter() - started
    subset = fleet[: args.baseline_devices]
    started = time.perf_counter()
    per_device = Matcher(index).match_all(subset)
    memo_only = (time.perf_counter() - started) * len(fleet) / len(subset)
    exposures = sum(len(f.device_ids) for f in findings)
    started = time.perf_counter()
    baseline_findings = UnmemoizedMatcher(index).match_all(subset)
    baseline = (time.perf_counter() - started) * len(fleet) / len(subset)
    assert len(baseline_findings) == len(per_device)
    print(f"feed: {args.cves} CVEs over {args.sources} sources, {summary.records} tracker "
          f"entries, {index.size} release statements, {size_mb:.1f} MB "
          f"(generated in {generated:.1f} s)")
    print(f"import into the hub store: {imported:.1f} s; again (all unchanged: "
          f"{again.unchanged}): {reimported:.1f} s; index loaded in {loaded:.2f} s")
    print(f"fleet: {len(fleet)} devices x {args.packages} packages in 10 groups, "
          f"{len(matcher._memo)} distinct (release, source, version), {exposures} "
          f"(device, package, record) exposures in {len(findings)} grouped findings")
    title = f"matching {len(fleet)} devices"
    print(f"{title:<46} {'seconds':>8} {'ms/device':>10} {'ratio':>7}")
    name = f"baseline: no memo ({len(subset)} devices, scaled)"
    print(f"{name:<46} {baseline:>8.2f} {baseline * 1000 / len(fleet):>10.2f} {1.0:>7.2f}")
    name = f"memo, a finding per device ({len(subset)}, scaled)"
    print(f"{name:<46} {memo_only:>8.2f} {memo_only * 1000 / len(fleet):>10.2f} "
          f"{memo_only / baseline:>7.2f}")
    name = "current: memo, findings per group (match_fleet)"
    print(f"{name:<46} {matched:>8.2f} {matched * 1000 / len(fleet):>10.2f} "
          f"{matched / baseline:>7.2f}")
    print(f"report rows (vulnerability x group: {len(rows)}) from those findings: "
          f"{reported:.2f} s")

if __name__ == "__main__":
    main()
