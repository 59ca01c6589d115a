"""Exposure per vulnerability x device group, from matching findings: pure logic.

A row says which devices of the group are exposed, through which installed binaries,
which versions fix it, how severe it is (hub.vulns.severity), its state — `fixable`
when a fixed version exists for the devices' release, else `unfixed` (no fix in the
release: never offered as fixable) or `undetermined` — and what to do: for every
exposed binary a published dpkg release carrying a version that fixes it (its
package's source version at or past the fixed version) and the `rollout start` line for
the group; else the Debian version to publish.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from hub.vulns.debian_version import debian_version
from hub.vulns.fixing_releases import PackageRelease
from hub.vulns.matching import Finding, Verdict
from hub.vulns.severity import (
    LEVELS,
    Severity,
    at_least,
    cvss_severity,
    urgency_severity,
)
from hub.vulns.store import AdvisoryInfo

_STRENGTH = {Verdict.FIXABLE: 0, Verdict.UNFIXED: 1, Verdict.UNDETERMINED: 2}


@dataclass(frozen=True)
class DeviceInfo:
    device_id: str
    name: str
    group: str


def _fixes(release: PackageRelease, finding: Finding) -> bool:
    judgement = finding.judgement
    if release.package != finding.package.name or judgement.verdict is not Verdict.FIXABLE:
        return False
    carried = debian_version(release.source_version)
    if judgement.fixed_version:
        return carried >= debian_version(judgement.fixed_version)
    return carried > debian_version(judgement.last_affected)


def _fixed_text(finding: Finding) -> str:
    judgement = finding.judgement
    if judgement.fixed_version:
        return f"{finding.release}: {finding.statement.package} {judgement.fixed_version}"
    if judgement.last_affected:
        return f"{finding.release}: {finding.statement.package} > {judgement.last_affected}"
    return f"{finding.release}: {judgement.verdict.value}"


class SeverityOf:
    """Severity per vulnerability: the highest CVSS base score of any record about it (a
    score is the vulnerability's, whichever release's record carries it), else the
    highest tracker urgency among the statements that matched."""

    def __init__(self, infos: dict[str, AdvisoryInfo]) -> None:
        self._records: dict[str, list[AdvisoryInfo]] = defaultdict(list)
        for info in infos.values():
            for vulnerability in info.vulnerabilities:
                self._records[vulnerability].append(info)

    def __call__(self, vulnerability: str, findings: list[Finding]) -> Severity:
        scored = [found for found in (cvss_severity(info.severity) for info in
                                      self._records.get(vulnerability, ()) if info.severity)
                  if found is not None]
        if scored:
            return max(scored, key=lambda s: (s.score or 0.0))
        urgencies = [urgency_severity(f.statement.urgency) for f in findings
                     if f.statement.urgency]
        return min(urgencies, key=lambda s: s.rank) if urgencies else Severity("unknown")


def exposure_report(findings: list[Finding], infos: dict[str, AdvisoryInfo],
                    devices: dict[str, DeviceInfo], releases: list[PackageRelease],
                    group: str | None = None, severity: str | None = None,
                    hub_dir_option: str = "") -> list[dict[str, Any]]:
    """Rows from findings of `Matcher.match_fleet` (or `match_all`): every device a
    finding names must be in `devices`; findings naming devices of several groups are
    split by group."""
    per_row: dict[tuple[str, str], list[tuple[Finding, tuple[str, ...]]]] = defaultdict(list)
    about: dict[str, tuple[str, ...]] = {}
    for finding in findings:
        by_group: dict[str, list[str]] = defaultdict(list)
        for device_id in finding.device_ids:
            device = devices.get(device_id)
            if device is not None and (group is None or device.group == group):
                by_group[device.group].append(device_id)
        if not by_group:
            continue
        record_id = finding.record_id
        vulnerabilities = about.get(record_id)
        if vulnerabilities is None:
            info = infos.get(record_id)
            vulnerabilities = about[record_id] = info.vulnerabilities if info else (record_id,)
        for vulnerability in vulnerabilities:
            for device_group, device_ids in by_group.items():
                per_row[(vulnerability, device_group)].append((finding, tuple(device_ids)))
    severity_of = SeverityOf(infos)
    rows = []
    for (vulnerability, row_group), row_findings in per_row.items():
        rated = severity_of(vulnerability, [finding for finding, _ids in row_findings])
        if severity is not None and not at_least(rated, severity):
            continue
        rows.append(_row(vulnerability, row_group, row_findings, rated, devices, releases,
                         hub_dir_option))
    rows.sort(key=lambda row: (LEVELS.index(row["severity"]), -(row["score"] or 0.0),
                               -row["device_count"], row["vulnerability"], row["group"]))
    return rows


def _row(vulnerability: str, group: str, held: list[tuple[Finding, tuple[str, ...]]],
         rated: Severity, devices: dict[str, DeviceInfo], releases: list[PackageRelease],
         hub_dir_option: str) -> dict[str, Any]:
    findings = [finding for finding, _ids in held]
    exposed = {device_id for _finding, ids in held for device_id in ids}
    state = min((f.judgement.verdict for f in findings), key=_STRENGTH.__getitem__)
    suggested: dict[str, PackageRelease] = {}
    to_publish: set[str] = set()
    for finding in findings:
        if finding.judgement.verdict is not Verdict.FIXABLE:
            continue
        fixing = [release for release in releases if _fixes(release, finding)]
        if fixing:
            newest = max(fixing, key=lambda r: debian_version(r.package_version))
            suggested[newest.spec] = newest
        else:
            need = finding.judgement.fixed_version or f"> {finding.judgement.last_affected}"
            to_publish.add(f"{finding.package.name} from source {finding.statement.package} "
                           f"{need}")
    option = f" --dir {hub_dir_option}" if hub_dir_option else ""
    commands = [f"meisitong-hub rollout start {spec} --group {group}{option}"
                for spec in sorted(suggested)]
    if state is Verdict.FIXABLE:
        suggestion = "; ".join([f"roll out {spec}" for spec in sorted(suggested)]
                               + [f"no published release carries {need}: publish one"
                                  for need in sorted(to_publish)])
    elif state is Verdict.UNFIXED:
        suggestion = "no fix in this release yet (unfixed)"
    else:
        suggestion = "not yet known whether the release is affected"
    return {
        "vulnerability": vulnerability,
        "group": group,
        "severity": rated.level,
        "score": rated.score,
        "severity_source": rated.source,
        "state": state.value,
        "device_count": len(exposed),
        "devices": sorted({devices[device_id].name for device_id in exposed}),
        "installed": sorted({f"{f.package.name} {f.package.version}" for f in findings}),
        "fixed_in": sorted({_fixed_text(f) for f in findings
                            if f.judgement.verdict is Verdict.FIXABLE}),
        "records": sorted({f.record_id for f in findings}),
        "suggested_releases": sorted(suggested),
        "rollout_commands": commands,
        "suggestion": suggestion,
    }
