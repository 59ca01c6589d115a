"""Start and change rollouts: the per-group document signed by the online rollout key.

The database row and the signed document change together: the row is written in a
transaction that commits only after the new document is signed and on disk.
"""

from __future__ import annotations

import re
import sqlite3

from agent.wire.rollout import GroupRollouts, RolloutEntry, RolloutState, rollout_target_path
from agent.wire.validation import NAME_PATTERN
from hub.database import HubDatabase, utc_now
from hub.errors import PublishError, UnknownReleaseError
from hub.hub_dir import HubDir
from hub.tuf_repository import HubRepository


def find_release(database: HubDatabase, spec: str) -> sqlite3.Row:
    """`NAME` (its newest version), `NAME@VERSION`, or a release target path."""
    if spec.startswith("releases/"):
        rows = database.query("SELECT * FROM releases WHERE target = ?", (spec,))
        if rows:
            return rows[0]
    name, _, version = spec.partition("@")
    rows = database.query("SELECT * FROM releases WHERE name = ?", (name,))
    if version:
        rows = [row for row in rows if row["version"] == version]
    if not rows:
        known = sorted({f"{r['name']}@{r['version']}" for r in database.query(
            "SELECT name, version FROM releases")})
        hint = f"; published: {', '.join(known)}" if known else "; nothing is published yet"
        raise UnknownReleaseError(f"no published release {spec!r}{hint}")
    from packaging.version import Version

    return max(rows, key=lambda row: Version(row["version"]))


def group_document(db: sqlite3.Connection, group: str) -> GroupRollouts:
    rows = db.execute(
        "SELECT release, state, stage_percent, started_at FROM rollouts WHERE grp = ? "
        "ORDER BY started_at, release",
        (group,),
    ).fetchall()
    return GroupRollouts(
        group=group,
        rollouts=[
            RolloutEntry(
                release=row["release"],
                state=RolloutState(row["state"]),
                stage_percent=row["stage_percent"],
                started_at=row["started_at"],
            )
            for row in rows
        ],
    )


def start_rollout(
    hub_dir: HubDir, release_spec: str, group: str, actor: str = "admin"
) -> RolloutEntry:
    if not re.match(NAME_PATTERN, group):
        raise PublishError(
            f"group {group!r} is not a valid name (lower-case letters, digits, '.', '_', '-')"
        )
    database = HubDatabase(hub_dir.database)
    try:
        release = find_release(database, release_spec)
        now = utc_now()
        with database.transaction() as db:
            db.execute(
                "INSERT INTO rollouts (release, grp, state, stage_percent, started_at, updated_at)"
                " VALUES (?, ?, ?, 100, ?, ?) ON CONFLICT(release, grp) DO UPDATE SET "
                "state = excluded.state, stage_percent = 100, updated_at = excluded.updated_at",
                (release["target"], group, RolloutState.ACTIVE, now, now),
            )
            document = group_document(db, group)
            database.audit(db, actor, "rollout.start", release["target"], group=group, stage=100)
            HubRepository(hub_dir).set_rollout_document(
                rollout_target_path(group), document.to_bytes()
            )
    finally:
        database.close()
    return next(entry for entry in document.rollouts if entry.release == release["target"])
