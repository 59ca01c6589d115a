"""The Debian security tracker's JSON export, read into one `Advisory` per (source
package, CVE).

The shape (the tracker's /tracker/data/json):

    {SOURCE: {CVE: {"description": …, "scope": …, "debianbug": …,
                    "releases": {CODENAME: {"status": "resolved"|"open"|"undetermined",
                                            "fixed_version": …, "urgency": …,
                                            "repositories": {SUITE: VERSION},
                                            "nodsa": …, "nodsa_reason": …}}}}}

What the fields mean for matching (hub/vulns/matching.py): `resolved` with
`fixed_version` "0" is "this release never had it" (not affected, whatever is
installed); `resolved` with a version is fixed from that version on; `open` is affected
with no fix in the release (shown as unfixed, never as fixable), whatever `nodsa` says;
`undetermined` is not known yet. The entries carry no date: a later import of the same
(source, CVE) replaces the earlier one.
"""

from __future__ import annotations

import json
from typing import Any

from hub.errors import VulnFeedError
from hub.vulns.advisories import Advisory, Feed, Statement, StatementKind, TrackerStatus
from hub.vulns.debian_version import is_debian_version

_STATUSES = {status.value for status in TrackerStatus}


def looks_like_tracker(value: object) -> bool:
    """A non-empty object of objects of objects with `releases`: what the export is."""
    if not isinstance(value, dict) or not value or "id" in value:
        return False
    first = next(iter(value.values()))
    if not isinstance(first, dict):
        return False
    entry = next(iter(first.values()), None)
    return isinstance(entry, dict) and "releases" in entry


def _text(value: object, where: str, field: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise VulnFeedError(f"{where}: {field} must be a string, got {type(value).__name__}")
    return value


def parse_tracker(data: dict[str, Any], file: str) -> list[Advisory]:
    advisories = []
    for source, entries in data.items():
        if not isinstance(entries, dict):
            raise VulnFeedError(f"{file}: source package {source!r}: not an object of CVEs")
        for cve, entry in entries.items():
            advisories.append(parse_tracker_entry(source, cve, entry, file))
    return advisories


def parse_tracker_entry(source: str, cve: str, entry: object, file: str) -> Advisory:
    where = f"{file}: record {cve} of source package {source}"
    if not isinstance(entry, dict) or not isinstance(entry.get("releases"), dict):
        raise VulnFeedError(f"{where}: must be an object with 'releases'")
    statements = []
    for codename, release in entry["releases"].items():
        at = f"{where}: releases.{codename}"
        if not isinstance(release, dict):
            raise VulnFeedError(f"{at}: must be an object")
        status = _text(release.get("status"), at, "status")
        if status not in _STATUSES:
            raise VulnFeedError(f"{at}: status {status!r} is not one of "
                                f"{', '.join(sorted(_STATUSES))}")
        fixed = _text(release.get("fixed_version"), at, "fixed_version")
        if fixed and fixed != "0" and not is_debian_version(fixed):
            raise VulnFeedError(f"{at}: fixed_version {fixed!r} is not a Debian version")
        nodsa = " / ".join(part for part in (
            _text(release.get("nodsa"), at, "nodsa"),
            _text(release.get("nodsa_reason"), at, "nodsa_reason")) if part)
        statements.append(Statement(
            ecosystem="Debian", release=codename, package=source,
            kind=StatementKind.TRACKER, status=status, fixed_version=fixed,
            urgency=_text(release.get("urgency"), at, "urgency"), note=nodsa,
        ))
    return Advisory(
        record_id=f"debian-tracker:{source}/{cve}", feed=Feed.DEBIAN_TRACKER,
        vulnerabilities=(cve,), modified="",
        summary=_text(entry.get("description"), where, "description")[:300],
        severity=(), statements=tuple(statements),
        body=json.dumps({source: {cve: {key: value for key, value in entry.items()
                                        if key != "description"}}}, sort_keys=True),
    )
