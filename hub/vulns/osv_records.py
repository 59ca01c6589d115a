"""OSV records: validated against the OSV JSON schema, then read into `Advisory`.

The schema (osv_schema.json beside this module, vendored from ossf/osv-schema; see its
`$comment` for the commit and licence) is checked with `jsonschema`. On top of it, what
the schema cannot say and matching relies on: every version in a Debian ECOSYSTEM range
or `versions` list is a Debian version, so a typo fails the import instead of silently
never matching.

Which vulnerabilities a record is about (what a report groups it under): its own id if
it is a CVE, the CVEs among its `aliases`, a `DEBIAN-CVE-…`/`UBUNTU-CVE-…` id's CVE, and
failing those the CVEs in `upstream` (a DSA names the CVEs it fixes there); else the
record's own id.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from hub.errors import VulnFeedError
from hub.vulns.advisories import Advisory, Feed, RangeEvent, Statement, StatementKind
from hub.vulns.debian_releases import ANY_RELEASE, release_of_version
from hub.vulns.debian_version import is_debian_version

SCHEMA_FILE = Path(__file__).with_name("osv_schema.json")
_CVE = re.compile(r"CVE-\d{4}-\d{4,}")
_EVENT_KINDS = ("introduced", "fixed", "last_affected", "limit")


@cache
def _validator() -> Draft202012Validator:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def _where(path: Any) -> str:
    parts = [f"[{part}]" if isinstance(part, int) else f".{part}" for part in path]
    return "".join(parts).lstrip(".") or "record"


def looks_like_osv(value: object) -> bool:
    return isinstance(value, dict) and "id" in value and "modified" in value


def vulnerability_ids(record: dict[str, Any]) -> tuple[str, ...]:
    own = str(record["id"])
    found: list[str] = []
    if _CVE.fullmatch(own):
        found.append(own)
    for alias in record.get("aliases") or ():
        if _CVE.fullmatch(alias) and alias not in found:
            found.append(alias)
    embedded = _CVE.search(own)
    if not found and embedded and own.endswith(embedded.group()):
        found.append(embedded.group())
    if not found:
        found = [item for item in record.get("upstream") or () if _CVE.fullmatch(item)]
    return tuple(found) or (own,)


def parse_osv_record(record: object, where: str) -> Advisory:
    """`where` names the file and position (for errors); raises VulnFeedError."""
    label = where
    if isinstance(record, dict) and isinstance(record.get("id"), str):
        label = f"{where}: record {record['id']}"
    error = best_match(_validator().iter_errors(record))
    if error is not None:
        raise VulnFeedError(f"{label}: not a valid OSV record: {_where(error.absolute_path)}: "
                            f"{error.message}")
    assert isinstance(record, dict)
    statements: list[Statement] = []
    severity = [(item["type"], item["score"]) for item in record.get("severity") or ()]
    affected = record.get("affected") or []
    for index, entry in enumerate(affected):
        severity += [(item["type"], item["score"]) for item in entry.get("severity") or ()]
        statements.append(_statement(entry, f"{label}: affected[{index}]"))
    if not affected:
        statements.append(Statement(ecosystem="", release="", package="",
                                    kind=StatementKind.NO_PACKAGE))
    return Advisory(
        record_id=record["id"], feed=Feed.OSV, vulnerabilities=vulnerability_ids(record),
        modified=record["modified"], summary=record.get("summary") or
        (record.get("details") or "")[:300], severity=tuple(severity),
        withdrawn=record.get("withdrawn") or "", statements=tuple(statements),
        body=json.dumps(record, sort_keys=True),
    )


def _statement(entry: dict[str, Any], where: str) -> Statement:
    package = entry.get("package")
    if not package:
        return Statement(ecosystem="", release="", package="", kind=StatementKind.NO_PACKAGE)
    ecosystem, _, release = package["ecosystem"].partition(":")
    if ecosystem != "Debian":
        return Statement(ecosystem=package["ecosystem"], release="", package=package["name"],
                         kind=StatementKind.OTHER_ECOSYSTEM)
    ranges = []
    for index, found in enumerate(entry.get("ranges") or ()):
        if found["type"] != "ECOSYSTEM":
            continue
        events = []
        for event in found["events"]:
            kind = next(key for key in _EVENT_KINDS if key in event)
            version = event[kind]
            if not (version == "0" and kind == "introduced") and not is_debian_version(version):
                raise VulnFeedError(f"{where}.ranges[{index}]: {kind} {version!r} is not a "
                                    "Debian version")
            events.append(RangeEvent(kind, version))
        ranges.append(tuple(events))
    versions = tuple(entry.get("versions") or ())
    for version in versions:
        if not is_debian_version(version):
            raise VulnFeedError(f"{where}.versions: {version!r} is not a Debian version")
    return Statement(
        ecosystem="Debian", release=release_of_version(release) if release else ANY_RELEASE,
        package=package["name"], kind=StatementKind.OSV_AFFECTED, ranges=tuple(ranges),
        versions=versions, note=package["ecosystem"],
    )
