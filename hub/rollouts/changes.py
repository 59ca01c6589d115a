"""Start and change rollouts: the database rows and the documents signed by the online
rollout key, changed together.

Every change — an admin's start, advance, pause, resume or abort, or the controller's
advance or halt — runs in one database transaction that reads the rollout afresh, checks
the change is allowed, writes the rows and the audit entry, signs and writes the new
documents, and only then commits. A refused change raises before anything is written; a
failure while signing rolls the rows back. Nothing is half-applied.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from agent.wire.rollout import RolloutEntry, RolloutState
from agent.wire.validation import NAME_PATTERN
from hub.database import HubDatabase
from hub.errors import PublishError, RolloutError, UnknownGroupError, UnknownReleaseError
from hub.hub_dir import HubDir
from hub.repository.tuf_repository import HubRepository
from hub.rollouts.controller import Verdict, decide
from hub.rollouts.evidence import gather_progress
from hub.rollouts.rules import RolloutPlan
from hub.rollouts.store import (
    RolloutRecord,
    create_group,
    group_documents,
    iso,
    known_groups,
    open_rollout_database,
    read_rollout,
    read_rollouts,
    write_rollout,
)

if TYPE_CHECKING:
    from hub.compat.hold import Hold

CONTROLLER = "controller"
"""The audit log's actor for changes the controller makes by itself."""


class RolloutAction(StrEnum):
    ADVANCE = "advance"
    PAUSE = "pause"
    RESUME = "resume"
    ABORT = "abort"


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


def start_rollout(
    hub_dir: HubDir,
    release_spec: str,
    group: str,
    plan: RolloutPlan | None = None,
    actor: str = "admin",
    new_group: bool = False,
    now: datetime | None = None,
) -> RolloutEntry:
    """Start rolling a published release out to `group` by `plan`.

    Without a plan the release goes to the whole group at once and the controller leaves
    it alone (`RolloutPlan.immediate`). The group must be known (an enrolled device is in
    it, or an admin created it: `new_group=True` creates it). Pilot devices are given by
    id or name and must be in the group or a pilot group, or they would never see it.
    """
    plan = plan or RolloutPlan.immediate()
    now = now or datetime.now(UTC)
    _check_group_name(group)
    if group in plan.pilot_groups:
        raise RolloutError(f"pilot group {group!r} is the rollout's own group; every device "
                           "of a pilot group is a pilot, so name another group")
    database = open_rollout_database(hub_dir.database)
    try:
        release = find_release(database, release_spec)
        _refuse_ambiguous_name(database, release_spec)
        target = release["target"]
        with database.transaction() as db:
            known = known_groups(db)
            unknown = [g for g in (group, *plan.pilot_groups)
                       if g not in known and not (new_group and g == group)]
            if unknown:
                raise UnknownGroupError(
                    f"unknown group(s) {', '.join(map(repr, unknown))}: no enrolled device is "
                    f"in it and no admin created it (known: {', '.join(sorted(known)) or 'none'}"
                    "); check the spelling, or pass --new-group to create the rollout's group"
                )
            existing = read_rollout(db, target, group)
            if existing is not None:
                raise RolloutError(
                    f"{target} is already rolling out to group {group!r} ({_describe(existing)})"
                    "; use `rollout advance|pause|resume|abort`"
                )
            audience = {group, *plan.pilot_groups}
            for other in read_rollouts(db, release=target):
                shared = other.audience_groups & audience
                if shared:
                    raise RolloutError(
                        f"group(s) {', '.join(sorted(shared))} already see {target} through its "
                        f"rollout to {other.group!r}: one group, one rollout of a release"
                    )
            plan = plan.model_copy(update={
                "pilot_devices": _resolve_pilot_devices(db, plan.pilot_devices, audience)
            })
            record = RolloutRecord(
                release=target, group=group, state=RolloutState.ACTIVE, plan=plan,
                current_stage=0, stage_started_at=now, started_at=iso(now),
            )
            write_rollout(db, record, now)
            if new_group:
                create_group(db, group, actor, now)
            database.audit(
                db, actor, "rollout.start", target, group=group, stages=list(plan.stages),
                pilot_devices=list(plan.pilot_devices), pilot_groups=list(plan.pilot_groups),
                rules=plan.rules.model_dump(mode="json"), new_group=new_group,
            )
            _publish(hub_dir, db, record.audience_groups)
    finally:
        database.close()
    return record.entry()


def change_rollout(
    hub_dir: HubDir,
    release_spec: str,
    group: str,
    action: RolloutAction,
    actor: str = "admin",
    reason: str = "",
    now: datetime | None = None,
) -> RolloutRecord:
    """An admin's advance, pause, resume or abort; RolloutError when the state forbids it."""
    now = now or datetime.now(UTC)
    database = open_rollout_database(hub_dir.database)
    try:
        with database.transaction() as db:
            record = _find_rollout(database, db, release_spec, group)
            changed = _apply_action(db, record, action, reason or f"{action} by hand", now)
            write_rollout(db, changed, now)
            database.audit(
                db, actor, f"rollout.{action}", record.release, group=record.group,
                reason=reason or "by hand", from_stage=record.current_stage,
                to_stage=changed.current_stage, stage_percent=changed.stage_percent,
                from_state=record.state.value, state=changed.state.value,
            )
            _publish(hub_dir, db, changed.audience_groups)
    finally:
        database.close()
    return changed


def unhold_devices(
    hub_dir: HubDir,
    release_spec: str,
    group: str,
    devices: Sequence[str] = (),
    actor: str = "admin",
    reason: str = "",
    now: datetime | None = None,
) -> tuple[str, ...]:
    """Lift compatibility holds of a rollout: of `devices` (ids or names), or all. The
    controller will not hold them again for this rollout. Returns the device ids."""
    from hub.rollouts.holds import release_holds

    now = now or datetime.now(UTC)
    database = open_rollout_database(hub_dir.database)
    try:
        with database.transaction() as db:
            record = _find_rollout(database, db, release_spec, group)
            held = set(record.held_devices)
            where = f"rollout of {record.release} to group {record.group!r}"
            if not held:
                raise RolloutError(f"{where} holds no device")
            chosen = set()
            for spec in devices:
                rows = db.execute("SELECT device_id FROM devices WHERE device_id = ? OR "
                                  "name = ?", (spec, spec)).fetchall()
                found = [row[0] for row in rows if row[0] in held]
                if len(found) != 1:
                    raise RolloutError(f"device {spec!r} is not held by the {where}")
                chosen.add(found[0])
            released = tuple(sorted(chosen or held))
            release_holds(db, record.release, record.group, released, actor,
                          reason or "by hand", iso(now))
            database.audit(db, actor, "rollout.unhold", record.release, group=record.group,
                           reason=reason or "by hand", devices=list(released))
            _publish(hub_dir, db, record.audience_groups)
    finally:
        database.close()
    return released


def rollout_records(
    hub_dir: HubDir, release_spec: str | None = None, group: str | None = None
) -> list[RolloutRecord]:
    database = open_rollout_database(hub_dir.database)
    try:
        with database.transaction() as db:
            if release_spec is None:
                return read_rollouts(db, group=group)
            if group is not None:
                return [_find_rollout(database, db, release_spec, group)]
            target = find_release(database, release_spec)["target"]
            return read_rollouts(db, release=target)
    finally:
        database.close()


@dataclass(frozen=True)
class ControllerChange:
    release: str
    group: str
    verdict: Verdict
    reason: str
    stage_percent: int


@dataclass(frozen=True)
class ControllerPass:
    changes: list[ControllerChange]
    recheck_at: datetime | None
    """The earliest soak end among rollouts waiting for one: apply the rules again then."""


def apply_rollout_rules(hub_dir: HubDir, now: datetime | None = None) -> ControllerPass:
    """Apply the controller's rules to every active, automatic rollout once."""
    now = now or datetime.now(UTC)
    database = open_rollout_database(hub_dir.database)
    changes: list[ControllerChange] = []
    recheck: list[datetime] = []
    try:
        with database.transaction() as db:
            candidates = [
                (r.release, r.group) for r in read_rollouts(db)
                if r.state is RolloutState.ACTIVE and r.rules.automatic
            ]
        for release, group in candidates:
            proposed = _proposed_holds(database, release, group, now)
            with database.transaction() as db:
                record = read_rollout(db, release, group)
                if record is None or record.state is not RolloutState.ACTIVE:
                    continue
                held = _hold_flagged(database, db, record, proposed, now)
                changes.extend(held)
                if held:
                    record = read_rollout(db, release, group) or record
                decision = decide(gather_progress(db, record).evidence, record.rules, now)
                if decision.verdict is Verdict.WAIT:
                    if decision.recheck_at is not None:
                        recheck.append(decision.recheck_at)
                    if held:
                        _publish(hub_dir, db, record.audience_groups)
                    continue
                if decision.verdict is Verdict.HALT:
                    changed = record.changed(state=RolloutState.HALTED, reason=decision.reason)
                else:
                    changed = record.changed(current_stage=decision.to_stage,
                                             stage_started_at=now, reason="")
                write_rollout(db, changed, now)
                database.audit(
                    db, CONTROLLER, f"rollout.{decision.verdict}", release, group=group,
                    reason=decision.reason, decided_at=iso(now),
                    from_stage=record.current_stage, to_stage=changed.current_stage,
                    stage_percent=changed.stage_percent, state=changed.state.value,
                    evidence=decision.figures,
                )
                _publish(hub_dir, db, changed.audience_groups)
                changes.append(ControllerChange(release, group, decision.verdict,
                                                decision.reason, changed.stage_percent))
    finally:
        database.close()
    return ControllerPass(changes, min(recheck, default=None))


# -- internals ----------------------------------------------------------------------


def _proposed_holds(database: HubDatabase, release: str, group: str,
                    now: datetime) -> list[Hold]:
    """The compatibility holds a rollout that opted in lacks, computed in a read
    transaction when due (hub/compat/hold.py: seconds for a big fleet, so never behind
    the write lock)."""
    from hub.compat.hold import SCHEDULE, new_holds

    with database.read_transaction() as db:
        record = read_rollout(db, release, group)
        if record is None or not record.rules.hold_flagged:
            return []
        key = (str(database.path), release, group)
        watermark = SCHEDULE.due(db, key, release, now)
        if watermark is None:
            return []
        holds = new_holds(db, record)
    SCHEDULE.checked(key, watermark, now)
    return holds


def _hold_flagged(database: HubDatabase, db: sqlite3.Connection, record: RolloutRecord,
                  proposed: list[Hold], now: datetime) -> list[ControllerChange]:
    """Hold the release for the rollout's devices in flagged compatibility combinations
    not held yet: rows and audit entry (with the figures) inside the caller's
    transaction; the caller publishes the documents that list them."""
    import json

    from hub.compat.matrix import CompatSettings
    from hub.rollouts.holds import add_holds, released_devices

    changes = []
    already = set(record.held_devices) | released_devices(db, record.release, record.group)
    for proposal in proposed:
        hold = replace(proposal, devices=tuple(d for d in proposal.devices if d not in already))
        if not hold.devices:
            continue
        already.update(hold.devices)
        figures = hold.figures(CompatSettings())
        add_holds(db, record.release, record.group, hold.devices,
                  json.dumps(figures["attributes"]), iso(now))
        reason = hold.reason()
        database.audit(db, CONTROLLER, "rollout.hold", record.release, group=record.group,
                       reason=reason, decided_at=iso(now), stage_percent=record.stage_percent,
                       state=record.state.value, evidence=figures)
        changes.append(ControllerChange(record.release, record.group, Verdict.HOLD, reason,
                                        record.stage_percent))
    return changes


def _apply_action(
    db: sqlite3.Connection, record: RolloutRecord, action: RolloutAction, reason: str,
    now: datetime,
) -> RolloutRecord:
    where = f"rollout of {record.release} to group {record.group!r}"
    if record.aborted:
        raise RolloutError(f"{where} was aborted ({record.reason}); start a new release instead")
    state = record.state
    if action is RolloutAction.ADVANCE:
        if state is RolloutState.HALTED:
            raise RolloutError(f"{where} is halted ({record.reason}); nothing was advanced. "
                               "Resume it first if the halt was wrong")
        if record.is_final_stage:
            raise RolloutError(f"{where} is already at its final stage ({record.stage_percent}%)")
        return record.changed(current_stage=record.current_stage + 1, stage_started_at=now)
    if action is RolloutAction.PAUSE:
        if state is not RolloutState.ACTIVE:
            raise RolloutError(f"{where} is {state}, not active; nothing to pause")
        return record.changed(state=RolloutState.PAUSED, reason=reason)
    if action is RolloutAction.RESUME:
        if state is RolloutState.ACTIVE:
            raise RolloutError(f"{where} is active; nothing to resume")
        if state is RolloutState.PAUSED:
            return record.changed(state=RolloutState.ACTIVE, reason="")
        # Resuming a halt: the admin has judged the evidence so far; the current stage
        # starts again and counts only results that arrive from now on.
        watermark = db.execute("SELECT coalesce(max(rowid), 0) FROM results").fetchone()[0]
        return record.changed(state=RolloutState.ACTIVE, reason="", stage_started_at=now,
                              evidence_after=int(watermark))
    return record.changed(state=RolloutState.HALTED, aborted=True, reason=reason)


def _find_rollout(
    database: HubDatabase, db: sqlite3.Connection, spec: str, group: str
) -> RolloutRecord:
    """The rollout of `spec` (NAME, NAME@VERSION or target) to `group`."""
    if "@" in spec or spec.startswith("releases/"):
        target = find_release(database, spec)["target"]
        found = read_rollouts(db, release=target, group=group)
    else:
        names = {row["target"]: row["name"] for row in database.query(
            "SELECT target, name FROM releases WHERE name = ?", (spec,))}
        if not names:
            find_release(database, spec)  # raises UnknownReleaseError with what exists
        found = [r for r in read_rollouts(db, group=group) if r.release in names]
    if len(found) == 1:
        return found[0]
    if found:
        raise RolloutError(
            f"several versions of {spec!r} are rolling out to group {group!r} "
            f"({', '.join(r.release for r in found)}); say NAME@VERSION"
        )
    elsewhere = sorted({r.group for r in read_rollouts(db) if spec in r.release})
    hint = f"; it rolls out to {', '.join(elsewhere)}" if elsewhere else ""
    raise RolloutError(f"no rollout of {spec!r} to group {group!r}{hint}")


def _refuse_ambiguous_name(database: HubDatabase, spec: str) -> None:
    """Starting a rollout is not a place to guess: a bare NAME with several versions
    published must say which (as `rollout status` asks)."""
    if "@" in spec or spec.startswith("releases/"):
        return
    versions = sorted(row["version"] for row in database.query(
        "SELECT version FROM releases WHERE name = ?", (spec,)))
    if len(versions) > 1:
        raise RolloutError(
            f"several versions of {spec!r} are published ({', '.join(versions)}); say "
            f"which: {spec}@VERSION"
        )


def _resolve_pilot_devices(
    db: sqlite3.Connection, specs: Sequence[str], audience: set[str]
) -> tuple[str, ...]:
    resolved = []
    for spec in specs:
        rows = db.execute(
            "SELECT device_id, name, grp FROM devices WHERE device_id = ? OR name = ?",
            (spec, spec),
        ).fetchall()
        if not rows:
            raise RolloutError(f"pilot device {spec!r}: no enrolled device has that id or name")
        if len(rows) > 1:
            raise RolloutError(f"pilot device {spec!r}: several devices have that name; "
                               "give the device id")
        row = rows[0]
        if row["grp"] not in audience:
            raise RolloutError(
                f"pilot device {spec!r} is in group {row['grp']!r}, which will not see this "
                f"rollout (groups: {', '.join(sorted(audience))})"
            )
        resolved.append(row["device_id"])
    return tuple(dict.fromkeys(resolved))


def _check_group_name(group: str) -> None:
    if not re.match(NAME_PATTERN, group):
        raise PublishError(
            f"group {group!r} is not a valid name (lower-case letters, digits, '.', '_', '-')"
        )


def _describe(record: RolloutRecord) -> str:
    return f"{record.state}, stage {record.current_stage + 1} of {len(record.plan.stages)}, " \
           f"{record.stage_percent}%"


def _publish(hub_dir: HubDir, db: sqlite3.Connection, groups: set[str]) -> None:
    HubRepository(hub_dir).set_rollout_documents(group_documents(db, groups))
