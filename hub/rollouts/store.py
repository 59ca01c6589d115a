"""Rollouts in the hub's database, and the signed documents built from them.

The `rollouts` table (hub/database.py) keeps what every reader needs: release, group,
state, current stage percent. `rollout_plans` beside it keeps what the controller needs:
the plan the admin asked for (stages, pilots, rules), the current stage and when it
began, why it was paused or halted, and whether an admin aborted it. `rollout_groups`
holds groups an admin created before any device enrolled into them.

A rollout with pilot groups appears in the document of its group and of each pilot
group, so pilot devices (which read only their own group's document) see it.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from agent.wire.rollout import GroupRollouts, RolloutEntry, RolloutState, rollout_target_path
from hub.database import HubDatabase
from hub.rollouts.holds import held_devices
from hub.rollouts.rules import RolloutPlan, RolloutRules

ROLLOUT_SCHEMA = """
CREATE TABLE IF NOT EXISTS rollout_plans (
    release TEXT NOT NULL,
    grp TEXT NOT NULL,
    plan TEXT NOT NULL,
    current_stage INTEGER NOT NULL DEFAULT 0,
    stage_started_at TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    aborted INTEGER NOT NULL DEFAULT 0,
    evidence_after INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (release, grp)
);
CREATE TABLE IF NOT EXISTS rollout_groups (
    name TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL
);
"""


def open_rollout_database(database_path: Path) -> HubDatabase:
    """The hub database with the rollout tables present (hubs made before they existed
    get them on first use)."""
    database = HubDatabase(database_path)
    ensure_rollout_schema(database)
    return database


def ensure_rollout_schema(database: HubDatabase) -> None:
    for statement in ROLLOUT_SCHEMA.split(";"):
        if statement.strip():
            database.query(statement)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class RolloutRecord:
    release: str
    group: str
    state: RolloutState
    plan: RolloutPlan
    current_stage: int
    stage_started_at: datetime
    started_at: str
    reason: str = ""
    aborted: bool = False
    evidence_after: int = 0
    """Results stored at or before this row id no longer count (set by a resume after a
    halt: the admin has seen that evidence and chose to go on)."""
    held_devices: tuple[str, ...] = ()
    """Devices the rollout goes on without (hub/rollouts/holds.py)."""

    @property
    def stage_percent(self) -> int:
        return self.plan.stages[self.current_stage]

    @property
    def rules(self) -> RolloutRules:
        return self.plan.rules

    @property
    def audience_groups(self) -> set[str]:
        """Groups whose document carries this rollout."""
        return {self.group, *self.plan.pilot_groups}

    @property
    def is_final_stage(self) -> bool:
        return self.current_stage + 1 >= len(self.plan.stages)

    def entry(self) -> RolloutEntry:
        return RolloutEntry(
            release=self.release,
            state=self.state,
            stage_percent=self.stage_percent,
            stages=list(self.plan.stages),
            current_stage=self.current_stage,
            pilot_devices=list(self.plan.pilot_devices),
            pilot_groups=list(self.plan.pilot_groups),
            reason=self.reason[:500],
            started_at=self.started_at,
            held_devices=list(self.held_devices),
        )

    def changed(self, **changes: object) -> RolloutRecord:
        return replace(self, **changes)  # type: ignore[arg-type]


_SELECT = (
    "SELECT r.release, r.grp, r.state, r.stage_percent, r.started_at, r.updated_at, "
    "p.plan, p.current_stage, p.stage_started_at, p.reason, p.aborted, p.evidence_after "
    "FROM rollouts r LEFT JOIN rollout_plans p ON p.release = r.release AND p.grp = r.grp"
)


def _record(row: sqlite3.Row) -> RolloutRecord:
    if row["plan"] is None:
        # A rollout started before plans existed: one stage, driven by hand.
        plan = RolloutPlan(stages=(row["stage_percent"],), rules=RolloutRules(automatic=False))
        return RolloutRecord(row["release"], row["grp"], RolloutState(row["state"]), plan, 0,
                             parse_time(row["updated_at"]), row["started_at"])
    return RolloutRecord(
        release=row["release"],
        group=row["grp"],
        state=RolloutState(row["state"]),
        plan=RolloutPlan.from_json(row["plan"]),
        current_stage=row["current_stage"],
        stage_started_at=parse_time(row["stage_started_at"]),
        started_at=row["started_at"],
        reason=row["reason"],
        aborted=bool(row["aborted"]),
        evidence_after=row["evidence_after"],
    )


def read_rollouts(
    db: sqlite3.Connection, release: str | None = None, group: str | None = None
) -> list[RolloutRecord]:
    clauses, params = [], []
    if release is not None:
        clauses.append("r.release = ?")
        params.append(release)
    if group is not None:
        clauses.append("r.grp = ?")
        params.append(group)
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    rows = db.execute(f"{_SELECT}{where} ORDER BY r.started_at, r.release, r.grp",  # noqa: S608
                      params).fetchall()
    records = [_record(row) for row in rows]
    return [replace(record, held_devices=held)
            if (held := held_devices(db, record.release, record.group)) else record
            for record in records]


def read_rollout(db: sqlite3.Connection, release: str, group: str) -> RolloutRecord | None:
    found = read_rollouts(db, release, group)
    return found[0] if found else None


def write_rollout(db: sqlite3.Connection, record: RolloutRecord, now: datetime) -> None:
    """Insert or replace both rows of `record`, inside the caller's transaction."""
    db.execute(
        "INSERT INTO rollouts (release, grp, state, stage_percent, started_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(release, grp) DO UPDATE SET "
        "state = excluded.state, stage_percent = excluded.stage_percent, "
        "updated_at = excluded.updated_at",
        (record.release, record.group, record.state.value, record.stage_percent,
         record.started_at, iso(now)),
    )
    db.execute(
        "INSERT INTO rollout_plans (release, grp, plan, current_stage, stage_started_at, reason,"
        " aborted, evidence_after) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT(release, grp) DO UPDATE SET plan = excluded.plan, "
        "current_stage = excluded.current_stage, stage_started_at = excluded.stage_started_at,"
        " reason = excluded.reason, aborted = excluded.aborted, "
        "evidence_after = excluded.evidence_after",
        (record.release, record.group, record.plan.to_json(), record.current_stage,
         iso(record.stage_started_at), record.reason, int(record.aborted),
         record.evidence_after),
    )


def group_document(db: sqlite3.Connection, group: str) -> GroupRollouts:
    """Every rollout `group` must see: its own, and those it is a pilot group of."""
    entries = [
        record.entry() for record in read_rollouts(db)
        if group in record.audience_groups
    ]
    return GroupRollouts(group=group, rollouts=entries)


def group_documents(db: sqlite3.Connection, groups: set[str]) -> dict[str, bytes]:
    """Target path → document bytes for each group in `groups`."""
    return {
        rollout_target_path(group): group_document(db, group).to_bytes()
        for group in sorted(groups)
    }


def known_groups(db: sqlite3.Connection) -> set[str]:
    """A group is known when an enrolled device is in it, an admin created it
    (`rollout start --new-group`), or it already has a rollout."""
    rows = db.execute(
        "SELECT grp FROM devices UNION SELECT name FROM rollout_groups "
        "UNION SELECT grp FROM rollouts"
    ).fetchall()
    return {row[0] for row in rows}


def create_group(db: sqlite3.Connection, name: str, actor: str, now: datetime) -> None:
    db.execute(
        "INSERT INTO rollout_groups (name, created_at, created_by) VALUES (?, ?, ?) "
        "ON CONFLICT(name) DO NOTHING",
        (name, iso(now), actor),
    )
