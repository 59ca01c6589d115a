"""Matching device software against feed statements: pure logic, no I/O.

A statement applies to an installed package only when all of these hold, which is what
keeps the false positives of looser matchers out:

- the statement is about a Debian source package (`Debian` / `Debian:N` in OSV, every
  tracker entry): a PyPI, npm or CPE-only record never matches a Debian package, whatever
  its name;
- its release is the device's (hub.vulns.debian_releases): a `Debian:11` range or a
  bullseye tracker entry says nothing about a bookworm device (the bare `Debian`
  ecosystem, which names no release, applies to every release);
- its package is the installed binary's *source* package, and the version compared is
  the *source* version: feeds are keyed and versioned by source (libssl3 is built from
  openssl; a binNMU `+b1` or a binary version the source overrides is not what a fix
  names);
- the versions are ordered as dpkg orders them (python-debian: epochs, `~`, `+debNuM`).

The verdicts: `fixable` (affected, and a fixed version exists for the release),
`unfixed` (affected, no fix in the release: tracker `open`, or an OSV range with no
end), `undetermined` (the tracker does not know yet), `not-affected`. A tracker
`fixed_version` "0" means the release never had the flaw.

The same (release, source package, source version) recurs across a fleet, so its
verdicts are computed once per match run (`Matcher`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import NamedTuple

from debian.debian_support import Version

from hub.inventory.software import DeviceSoftware, InstalledPackage
from hub.vulns.advisories import RangeEvent, Statement, StatementKind, TrackerStatus
from hub.vulns.debian_releases import ANY_RELEASE, device_release
from hub.vulns.debian_version import debian_version


class Verdict(StrEnum):
    FIXABLE = "fixable"
    UNFIXED = "unfixed"
    UNDETERMINED = "undetermined"
    NOT_AFFECTED = "not-affected"


EXPOSED = (Verdict.FIXABLE, Verdict.UNFIXED, Verdict.UNDETERMINED)


@dataclass(frozen=True)
class Judgement:
    verdict: Verdict
    why: str
    fixed_version: str = ""
    """The first version that fixes it in this release ('' if none is known)."""
    last_affected: str = ""
    """OSV `last_affected`: fixed in whatever comes after this version."""
    range: str = ""
    """The range or list that matched, as words ("introduced 0, fixed 3.0.13-1~deb12u1")."""


def describe_range(events: tuple[RangeEvent, ...]) -> str:
    return ", ".join(f"{event.kind} {event.version}" for event in events)


def judge(statement: Statement, version: str) -> Judgement:
    """What `statement` says about source version `version` (ValueError if it is no
    Debian version)."""
    installed = debian_version(version)
    if statement.kind is StatementKind.TRACKER:
        return _judge_tracker(statement, version, installed)
    if statement.kind is StatementKind.OSV_AFFECTED:
        return _judge_osv(statement, version, installed)
    return Judgement(Verdict.NOT_AFFECTED, f"a {statement.kind.value} statement "
                     "says nothing about Debian packages")


def _judge_tracker(statement: Statement, version: str, installed: Version) -> Judgement:
    where = f"Debian tracker, {statement.release}"
    note = f" (nodsa: {statement.note})" if statement.note else ""
    fixed = statement.fixed_version
    if statement.status == TrackerStatus.NOT_AFFECTED:
        return Judgement(Verdict.NOT_AFFECTED, f"{where}: marked not affected")
    if statement.status == TrackerStatus.OPEN:
        return Judgement(Verdict.UNFIXED, f"{where}: open, no fixed version in this release"
                         f"{note}; {version} is affected", range="open")
    if statement.status == TrackerStatus.UNDETERMINED:
        return Judgement(Verdict.UNDETERMINED, f"{where}: undetermined (not yet known whether "
                         f"this release is affected){note}", range="undetermined")
    if fixed == "0":
        return Judgement(Verdict.NOT_AFFECTED, f"{where}: fixed_version 0, this release "
                         "never had the flaw", range="fixed in 0")
    if not fixed:
        return Judgement(Verdict.NOT_AFFECTED, f"{where}: resolved without a version")
    if installed < debian_version(fixed):
        return Judgement(Verdict.FIXABLE, f"{where}: {version} < fixed {fixed}",
                         fixed_version=fixed, range=f"fixed {fixed}")
    return Judgement(Verdict.NOT_AFFECTED, f"{where}: {version} >= fixed {fixed}",
                     range=f"fixed {fixed}")


_ORDER = {"introduced": 0, "fixed": 1, "last_affected": 1, "limit": 1}


def _event_key(event: RangeEvent) -> tuple[int, Version | None, int]:
    if event.kind == "introduced" and event.version == "0":
        return (0, None, 0)
    return (1, debian_version(event.version), _ORDER[event.kind])


@lru_cache(maxsize=1 << 14)
def _sorted(events: tuple[RangeEvent, ...]) -> list[RangeEvent]:
    """OSV's evaluation order: by version, `introduced 0` first; at one version an
    introduction before a fix (an empty range stays empty)."""
    return sorted(events, key=_event_key)


def _in_range(installed: Version, events: tuple[RangeEvent, ...]) -> tuple[bool, str, str]:
    """(affected, fixed version, last_affected) by OSV's algorithm for ECOSYSTEM ranges."""
    affected = False
    for event in _sorted(events):
        if event.kind == "introduced":
            if event.version == "0" or installed >= debian_version(event.version):
                affected = True
        elif event.kind in ("fixed", "limit"):
            if installed >= debian_version(event.version):
                affected = False
        elif event.kind == "last_affected" and installed > debian_version(event.version):
            affected = False
    if not affected:
        return False, "", ""
    return True, *_closing(installed, events)


def _closing(installed: Version, events: tuple[RangeEvent, ...]) -> tuple[str, str]:
    """The first fixed (or last_affected) event at or after the installed version."""
    for event in _sorted(events):
        if event.kind == "fixed" and debian_version(event.version) > installed:
            return event.version, ""
        if event.kind == "last_affected" and debian_version(event.version) >= installed:
            return "", event.version
    return "", ""


def _judge_osv(statement: Statement, version: str, installed: Version) -> Judgement:
    where = f"OSV {statement.note}"
    for events in statement.ranges:
        affected, fixed, last = _in_range(installed, events)
        if affected:
            return _affected(where, version, describe_range(events), fixed, last)
    if version in statement.versions or any(
            installed == debian_version(listed) for listed in statement.versions):
        fixed, last = "", ""
        for events in statement.ranges:
            fixed, last = _closing(installed, events)
            if fixed or last:
                break
        return _affected(where, version, "listed in versions", fixed, last)
    ranges = "; ".join(describe_range(events) for events in statement.ranges) or "no range"
    listed = f", not among {len(statement.versions)} listed versions" \
        if statement.versions else ""
    return Judgement(Verdict.NOT_AFFECTED, f"{where}: {version} outside {ranges}{listed}",
                     range=ranges)


def _affected(where: str, version: str, matched: str, fixed: str, last: str) -> Judgement:
    if fixed:
        return Judgement(Verdict.FIXABLE, f"{where}: {version} in range ({matched}): fixed in "
                         f"{fixed}", fixed_version=fixed, range=matched)
    if last:
        return Judgement(Verdict.FIXABLE, f"{where}: {version} in range ({matched}): last "
                         f"affected {last}, fixed after it", last_affected=last, range=matched)
    return Judgement(Verdict.UNFIXED, f"{where}: {version} in range ({matched}) with no fix",
                     range=matched)


# -- a fleet ---------------------------------------------------------------------------

class Finding(NamedTuple):
    """Devices exposed through one installed binary package (the same name, version and
    source on each), by one feed record. A tuple: a fleet yields many, and a frozen
    dataclass costs twice as much to make."""

    device_ids: tuple[str, ...]
    package: InstalledPackage
    release: str
    record_id: str
    statement: Statement
    judgement: Judgement


class FeedIndex:
    """Debian statements by (release, source package)."""

    def __init__(self, statements: Iterable[tuple[str, Statement]]) -> None:
        self._by_key: dict[tuple[str, str], list[tuple[str, Statement]]] = defaultdict(list)
        self.size = 0
        for record_id, statement in statements:
            if statement.ecosystem == "Debian":
                self._by_key[(statement.release, statement.package)].append(
                    (record_id, statement))
                self.size += 1

    def about(self, release: str, source: str) -> list[tuple[str, Statement]]:
        return self._by_key.get((release, source), []) + self._by_key.get(
            (ANY_RELEASE, source), [])


def source_of(package: InstalledPackage) -> tuple[str, str]:
    """(source package, source version): what feeds are keyed and versioned by."""
    return package.source or package.name, package.source_version or package.version


class Matcher:
    """Matches devices against one FeedIndex, remembering each (release, source, source
    version)'s verdicts for the devices after it."""

    def __init__(self, index: FeedIndex) -> None:
        self.index = index
        self._memo: dict[tuple[str, str, str], list[tuple[str, Statement, Judgement]]] = {}

    def exposures(self, release: str, source: str,
                  version: str) -> list[tuple[str, Statement, Judgement]]:
        key = (release, source, version)
        found = self._memo.get(key)
        if found is None:
            found = []
            for record_id, statement in self.index.about(release, source):
                try:
                    judgement = judge(statement, version)
                except ValueError:
                    continue  # not a Debian version: no statement orders it
                if judgement.verdict in EXPOSED:
                    found.append((record_id, statement, judgement))
            self._memo[key] = found
        return found

    def match(self, software: DeviceSoftware) -> list[Finding]:
        release = device_release(software.os)
        if not release.known:
            return []
        findings: list[Finding] = []
        device_id, codename = software.device_id, release.codename
        for package in software.packages:
            source, version = source_of(package)
            hits = self.exposures(codename, source, version)
            if hits:
                findings.extend([Finding((device_id,), package, codename, record_id,
                                         statement, judgement)
                                 for record_id, statement, judgement in hits])
        return findings

    def match_all(self, fleet: Iterable[DeviceSoftware]) -> list[Finding]:
        """One finding per device, package and record."""
        findings: list[Finding] = []
        for software in fleet:
            findings += self.match(software)
        return findings

    def match_fleet(self, fleet: Iterable[DeviceSoftware],
                    group_of: dict[str, str]) -> list[Finding]:
        """One finding per (group, release, installed package, record), naming every
        device of the group that has that package: what a report per group needs,
        without a finding per device (a fleet repeats the same packages; 1,000 devices x
        3,000 packages gave 5.8 million per-device findings in tests/bench/)."""
        holders: dict[tuple[str, str, InstalledPackage], list[str]] = defaultdict(list)
        for software in fleet:
            release = device_release(software.os)
            if not release.known:
                continue
            group = group_of.get(software.device_id, "")
            for package in software.packages:
                holders[(group, release.codename, package)].append(software.device_id)
        findings: list[Finding] = []
        for (_group, codename, package), device_ids in holders.items():
            source, version = source_of(package)
            hits = self.exposures(codename, source, version)
            if hits:
                ids = tuple(device_ids)
                findings.extend([Finding(ids, package, codename, record_id, statement,
                                         judgement)
                                 for record_id, statement, judgement in hits])
        return findings
