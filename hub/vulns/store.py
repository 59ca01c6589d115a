"""The hub's vulnerability store: imported feed records and their statements.

Tables (applied through hub.database.SCHEMA_MODULES):

- `vuln_advisories`: one row per feed record (OSV id, or `debian-tracker:SOURCE/CVE`),
  with the record as the feed gave it (`body`) and the file it came from;
- `vuln_statements`: what the record says per package and release;
- `vuln_ids`: which vulnerabilities (CVE ids) each record is about.

An import is one transaction with its audit entry: all of it or nothing. It is
idempotent: a record already held with the same `modified` and body is left alone; one
held with a later OSV `modified` is kept (an older copy never replaces a newer one);
otherwise the record and its statements are replaced. Tracker entries carry no date,
so the last import of a (source, CVE) entry is what the hub holds.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from hub.database import HubDatabase, utc_now
from hub.vulns.advisories import Advisory, Feed, RangeEvent, Statement, StatementKind

SCHEMA = """
CREATE TABLE IF NOT EXISTS vuln_advisories (
    record_id TEXT PRIMARY KEY,
    feed TEXT NOT NULL,
    modified TEXT NOT NULL,
    withdrawn TEXT NOT NULL,
    summary TEXT NOT NULL,
    severity TEXT NOT NULL,
    vulnerabilities TEXT NOT NULL,
    source_file TEXT NOT NULL,
    imported_at TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS vuln_statements (
    record_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    ecosystem TEXT NOT NULL,
    release TEXT NOT NULL,
    package TEXT NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    fixed_version TEXT NOT NULL,
    urgency TEXT NOT NULL,
    note TEXT NOT NULL,
    ranges TEXT NOT NULL,
    versions TEXT NOT NULL,
    PRIMARY KEY (record_id, position)
);
CREATE TABLE IF NOT EXISTS vuln_ids (
    vulnerability TEXT NOT NULL,
    record_id TEXT NOT NULL,
    PRIMARY KEY (vulnerability, record_id)
);
CREATE INDEX IF NOT EXISTS vuln_ids_by_record ON vuln_ids (record_id);
"""


@dataclass(frozen=True)
class ImportSummary:
    files: int
    records: int
    added: int
    replaced: int
    unchanged: int
    kept_newer: int
    """Records the hub already holds with a later `modified` than the file's."""

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def _instant(modified: str) -> datetime | None:
    try:
        return datetime.fromisoformat(modified.replace("Z", "+00:00"))
    except ValueError:
        return None


def _is_older(incoming: str, held: str) -> bool:
    """True when the incoming record's `modified` is before the held one's."""
    new, old = _instant(incoming), _instant(held)
    if new is None or old is None:
        return False
    if new.tzinfo is None or old.tzinfo is None:
        new, old = new.replace(tzinfo=None), old.replace(tzinfo=None)
    return new < old


def _newest_per_record(advisories: Iterable[Advisory]) -> dict[str, Advisory]:
    chosen: dict[str, Advisory] = {}
    for advisory in advisories:
        held = chosen.get(advisory.record_id)
        if held is None or not _is_older(advisory.modified, held.modified):
            chosen[advisory.record_id] = advisory
    return chosen


def import_advisories(database: HubDatabase, advisories: list[Advisory], files: list[str],
                      actor: str) -> ImportSummary:
    chosen = _newest_per_record(advisories)
    added = replaced = unchanged = kept = 0
    now = utc_now()
    with database.transaction() as db:
        held = {row["record_id"]: (row["modified"], row["body"]) for row in db.execute(
            "SELECT record_id, modified, body FROM vuln_advisories")}
        for record_id, advisory in chosen.items():
            if record_id in held:
                modified, body = held[record_id]
                if _is_older(advisory.modified, modified):
                    kept += 1
                    continue
                if modified == advisory.modified and body == advisory.body:
                    unchanged += 1
                    continue
                _delete(db, record_id)
                replaced += 1
            else:
                added += 1
            _insert(db, advisory, now)
        database.audit(db, actor, "vulns.import", ", ".join(files)[:500], files=len(files),
                       records=len(chosen), added=added, replaced=replaced,
                       unchanged=unchanged, kept_newer=kept)
    return ImportSummary(len(files), len(chosen), added, replaced, unchanged, kept)


def _delete(db: sqlite3.Connection, record_id: str) -> None:
    for table in ("vuln_advisories", "vuln_statements", "vuln_ids"):
        db.execute(f"DELETE FROM {table} WHERE record_id = ?", (record_id,))  # noqa: S608


def _insert(db: sqlite3.Connection, advisory: Advisory, now: str) -> None:
    db.execute(
        "INSERT INTO vuln_advisories (record_id, feed, modified, withdrawn, summary, severity,"
        " vulnerabilities, source_file, imported_at, body) VALUES (?,?,?,?,?,?,?,?,?,?)",
        (advisory.record_id, advisory.feed.value, advisory.modified, advisory.withdrawn,
         advisory.summary, json.dumps(advisory.severity), json.dumps(advisory.vulnerabilities),
         advisory.source_file, now, advisory.body))
    db.executemany(
        "INSERT INTO vuln_statements (record_id, position, ecosystem, release, package, kind,"
        " status, fixed_version, urgency, note, ranges, versions) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        [(advisory.record_id, position, s.ecosystem, s.release, s.package, s.kind.value,
          s.status, s.fixed_version, s.urgency, s.note,
          json.dumps([[[e.kind, e.version] for e in events] for events in s.ranges]),
          json.dumps(s.versions)) for position, s in enumerate(advisory.statements)])
    db.executemany("INSERT OR IGNORE INTO vuln_ids (vulnerability, record_id) VALUES (?, ?)",
                   [(vulnerability, advisory.record_id)
                    for vulnerability in advisory.vulnerabilities])


@dataclass(frozen=True)
class AdvisoryInfo:
    """A stored record's facts a report or explanation shows (not its statements)."""

    record_id: str
    feed: Feed
    vulnerabilities: tuple[str, ...]
    modified: str
    withdrawn: str
    summary: str
    severity: tuple[tuple[str, str], ...]
    source_file: str
    imported_at: str


def _info(row: sqlite3.Row) -> AdvisoryInfo:
    return AdvisoryInfo(
        record_id=row["record_id"], feed=Feed(row["feed"]),
        vulnerabilities=tuple(json.loads(row["vulnerabilities"])), modified=row["modified"],
        withdrawn=row["withdrawn"], summary=row["summary"],
        severity=tuple((kind, score) for kind, score in json.loads(row["severity"])),
        source_file=row["source_file"], imported_at=row["imported_at"])


def _statement(row: sqlite3.Row) -> Statement:
    return Statement(
        ecosystem=row["ecosystem"], release=row["release"], package=row["package"],
        kind=StatementKind(row["kind"]), status=row["status"],
        fixed_version=row["fixed_version"], urgency=row["urgency"], note=row["note"],
        ranges=tuple(tuple(RangeEvent(kind, version) for kind, version in events)
                     for events in json.loads(row["ranges"])),
        versions=tuple(json.loads(row["versions"])))


def advisory_infos(database: HubDatabase) -> dict[str, AdvisoryInfo]:
    return {row["record_id"]: _info(row) for row in database.query(
        "SELECT record_id, feed, vulnerabilities, modified, withdrawn, summary, severity, "
        "source_file, imported_at FROM vuln_advisories")}


def debian_statements(database: HubDatabase) -> list[tuple[str, Statement]]:
    """Every statement about a Debian source package of a record not withdrawn: what
    matching reads."""
    return [(row["record_id"], _statement(row)) for row in database.query(
        "SELECT s.* FROM vuln_statements s JOIN vuln_advisories a USING (record_id) "
        "WHERE s.ecosystem = 'Debian' AND a.withdrawn = '' ORDER BY s.record_id, s.position")]


@dataclass(frozen=True)
class StoredRecord:
    info: AdvisoryInfo
    statements: tuple[Statement, ...]
    body: str


def records_about(database: HubDatabase, vulnerability: str) -> list[StoredRecord]:
    """Every record about `vulnerability` (a CVE id, or a record id), withdrawn ones too."""
    rows = database.query(
        "SELECT a.* FROM vuln_advisories a WHERE a.record_id IN (SELECT record_id FROM "
        "vuln_ids WHERE vulnerability = ?) OR a.record_id = ? ORDER BY a.record_id",
        (vulnerability, vulnerability))
    found = []
    for row in rows:
        statements = database.query(
            "SELECT * FROM vuln_statements WHERE record_id = ? ORDER BY position",
            (row["record_id"],))
        found.append(StoredRecord(_info(row), tuple(_statement(s) for s in statements),
                                  row["body"]))
    return found


def counts(database: HubDatabase) -> dict[str, int]:
    return {row["feed"]: row["n"] for row in database.query(
        "SELECT feed, COUNT(*) AS n FROM vuln_advisories GROUP BY feed")}
