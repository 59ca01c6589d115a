"""`vulns explain CVE DEVICE`: every record about the vulnerability, every statement in
it, and for each why it does or does not apply to the device — the record and file, the
range or status, the installed binary and the source version compared. Pure: the caller
reads the records and the device's software.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from hub.inventory.software import DeviceSoftware
from hub.vulns.advisories import Statement, StatementKind
from hub.vulns.debian_releases import ANY_RELEASE, device_release
from hub.vulns.matching import EXPOSED, Verdict, judge, source_of
from hub.vulns.store import StoredRecord


@dataclass
class StatementVerdict:
    about: str
    """What the statement is about: "Debian:12 source openssl", "PyPI pillow"."""
    verdict: str
    """fixable / unfixed / undetermined / not-affected / not-applicable."""
    why: str
    package: str = ""
    installed: str = ""
    source_version: str = ""
    fixed_version: str = ""
    range: str = ""


@dataclass
class RecordExplanation:
    record_id: str
    feed: str
    file: str
    modified: str
    statements: list[StatementVerdict] = field(default_factory=list)


def _about(statement: Statement) -> str:
    if statement.kind is StatementKind.NO_PACKAGE:
        return "no package"
    if statement.kind is StatementKind.OTHER_ECOSYSTEM:
        return f"{statement.ecosystem} package {statement.package}"
    release = statement.note if statement.kind is StatementKind.OSV_AFFECTED else \
        statement.release
    return f"{release or 'Debian (any release)'} source package {statement.package}"


def _statement_verdicts(statement: Statement, software: DeviceSoftware,
                        codename: str) -> list[StatementVerdict]:
    about = _about(statement)
    if statement.kind is StatementKind.NO_PACKAGE:
        return [StatementVerdict(about, "not-applicable", "names no package (CPE or GIT "
                                 "ranges only): it identifies no Debian package, so it is "
                                 "never matched")]
    if statement.kind is StatementKind.OTHER_ECOSYSTEM:
        return [StatementVerdict(about, "not-applicable", f"a {statement.ecosystem} package, "
                                 "not a Debian one: never matched against dpkg packages, "
                                 "whatever the name")]
    if statement.release not in (codename, ANY_RELEASE):
        return [StatementVerdict(about, "not-applicable", f"about {statement.release}; the "
                                 f"device runs {codename}")]
    built = [package for package in software.packages
             if source_of(package)[0] == statement.package]
    if not built:
        return [StatementVerdict(about, "not-applicable", "no installed binary package is "
                                 f"built from source {statement.package}")]
    verdicts = []
    for package in built:
        _source, version = source_of(package)
        try:
            judgement = judge(statement, version)
        except ValueError:
            verdicts.append(StatementVerdict(about, "not-applicable", f"{version!r} is no "
                                             "Debian version", package.name, package.version))
            continue
        verdicts.append(StatementVerdict(
            about, judgement.verdict.value,
            f"binary {package.name} {package.version} ({package.architecture}) is built from "
            f"{statement.package} {version}; {judgement.why}",
            package.name, package.version, version,
            judgement.fixed_version or (f"> {judgement.last_affected}"
                                        if judgement.last_affected else ""),
            judgement.range))
    return verdicts


def explain(vulnerability: str, device: dict[str, str], software: DeviceSoftware | None,
            records: list[StoredRecord]) -> dict[str, Any]:
    """`device`: {"device_id", "name", "group"}. The answer as JSON-able data; `verdict`
    is the strongest exposure any record gives (or not-affected / no inventory)."""
    answer: dict[str, Any] = {"vulnerability": vulnerability, "device": device,
                              "release": "", "records": [], "verdict": "not-affected"}
    if software is None:
        answer.update(verdict="unknown", why="the hub holds no inventory of this device")
        return answer
    release = device_release(software.os)
    answer["release"] = release.codename
    answer["os"] = asdict(software.os)
    if not release.known:
        answer.update(verdict="not-applicable", why=release.why)
    exposures = []
    for record in records:
        explained = RecordExplanation(record.info.record_id, record.info.feed.value,
                                      record.info.source_file, record.info.modified)
        if record.info.withdrawn:
            explained.statements.append(StatementVerdict(
                "record", "not-applicable", f"withdrawn on {record.info.withdrawn}"))
        elif release.known:
            for statement in record.statements:
                for verdict in _statement_verdicts(statement, software, release.codename):
                    explained.statements.append(verdict)
                    if verdict.verdict in {v.value for v in EXPOSED}:
                        exposures.append(verdict.verdict)
        answer["records"].append(asdict(explained))
    for level in (Verdict.FIXABLE, Verdict.UNFIXED, Verdict.UNDETERMINED):
        if level.value in exposures:
            answer["verdict"] = level.value
            break
    return answer
