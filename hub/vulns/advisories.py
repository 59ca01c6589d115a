"""What a vulnerability feed says, in one shape for both feeds we read.

An `Advisory` is one feed record: an OSV record (its `id`), or one (source package, CVE)
entry of the Debian security tracker. Its `statements` say, each for one package of one
ecosystem and release, which versions are affected. Matching reads only statements about
Debian source packages (`ecosystem == "Debian"`); the others are kept so that `vulns
explain` can say why a PyPI or CPE-only record does not apply to a Debian package.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Feed(StrEnum):
    OSV = "osv"
    DEBIAN_TRACKER = "debian-tracker"


class StatementKind(StrEnum):
    TRACKER = "tracker"
    """A tracker release entry: `status` and `fixed_version`."""
    OSV_AFFECTED = "osv-affected"
    """An OSV `affected[]` entry: ECOSYSTEM `ranges` and/or a `versions` list."""
    OTHER_ECOSYSTEM = "other-ecosystem"
    """An OSV `affected[]` entry of a non-Debian ecosystem (PyPI, npm, ...): never matched."""
    NO_PACKAGE = "no-package"
    """An OSV record, or `affected[]` entry, that names no package (CPE- or GIT-only)."""


class TrackerStatus(StrEnum):
    RESOLVED = "resolved"
    OPEN = "open"
    UNDETERMINED = "undetermined"
    NOT_AFFECTED = "not-affected"


@dataclass(frozen=True)
class RangeEvent:
    """One OSV range event: `introduced`, `fixed`, `last_affected` or `limit`."""

    kind: str
    version: str


@dataclass(frozen=True)
class Statement:
    ecosystem: str
    """`Debian` for the statements matching reads; else the OSV ecosystem as written."""
    release: str
    """Debian codename (hub.vulns.debian_releases), '' for the bare `Debian` ecosystem."""
    package: str
    """Debian: the source package. Others: the package name as the record gives it."""
    kind: StatementKind
    status: str = ""
    """Tracker: a TrackerStatus value."""
    fixed_version: str = ""
    """Tracker: the first fixed version; "0" means the release was never affected."""
    urgency: str = ""
    """Tracker: the release's urgency (low, medium, high, unimportant, ...)."""
    note: str = ""
    """Tracker: `nodsa` / `nodsa_reason`; OSV: the ecosystem as written ("Debian:12")."""
    ranges: tuple[tuple[RangeEvent, ...], ...] = ()
    """OSV: the events of each ECOSYSTEM range (other range types are not versions)."""
    versions: tuple[str, ...] = ()
    """OSV: the versions the record lists as affected."""


@dataclass(frozen=True)
class Advisory:
    record_id: str
    feed: Feed
    vulnerabilities: tuple[str, ...]
    """The ids a report groups by: the CVE(s) this record is about, or its own id."""
    modified: str
    """OSV `modified` (RFC 3339); '' for tracker entries, which carry no date."""
    summary: str
    severity: tuple[tuple[str, str], ...]
    """OSV `severity` (and per-package severity): (type, score) pairs, e.g. CVSS_V3."""
    withdrawn: str = ""
    statements: tuple[Statement, ...] = field(default_factory=tuple)
    source_file: str = ""
    body: str = ""
    """The record as the feed gave it (JSON text): the evidence `explain` points at."""
