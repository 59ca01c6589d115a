"""Group policies and group assignments, as the admin sets them: validated, then signed
with the offline release key as targets, like a release.

Why the offline key and not the hub's online one (README "Policies", "Who signs a
policy"): a policy decides when endpoints reboot and what they refuse. With the online
key a compromised hub could drop the maintenance windows (reboots in business hours),
lift a pause or a blocklist, or move devices into a group without windows. It still
could not make anything unsigned install; but "never reboots outside its window" is a
promise too, so the hub cannot change policies on its own.

The database keeps the text the admin wrote (for `policy show`, the forecast, and the
lease budget); its row commits only after the signed target is on disk.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from agent.errors import PolicyError
from agent.policy import GroupAssignment, Policy, assignment_target_path, policy_target_path
from agent.wire.validation import NAME_PATTERN
from hub.database import HubDatabase, utc_now
from hub.devices.enrollment import set_device_group
from hub.errors import PublishError, UnknownDeviceError, UnknownGroupError
from hub.hub_dir import HubDir
from hub.repository.tuf_repository import HubRepository, ReleaseTargetEntry
from hub.rollouts.store import create_group, known_groups, open_rollout_database

SCHEMA = """
CREATE TABLE IF NOT EXISTS policies (
    grp TEXT PRIMARY KEY,
    toml TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    set_at TEXT NOT NULL,
    set_by TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class StoredPolicy:
    group: str
    text: str
    sha256: str
    set_at: str
    set_by: str

    @property
    def policy(self) -> Policy:
        return Policy.from_toml(self.text, f"policy of group {self.group}")


def ensure_schema(database: HubDatabase) -> None:
    for statement in SCHEMA.strip().split(";"):
        if statement.strip():
            database.query(statement)


def _check_group(group: str) -> None:
    if not re.match(NAME_PATTERN, group):
        raise PublishError(
            f"group {group!r} is not a valid name (lower-case letters, digits, '.', '_', '-')"
        )


def _sign_small_target(hub_dir: HubDir, target_path: str, data: bytes,
                       offline_keys_dir: Path | None) -> None:
    with tempfile.TemporaryDirectory(dir=hub_dir.root, prefix=".policy-") as scratch:
        staged = Path(scratch) / Path(target_path).name
        staged.write_bytes(data)
        HubRepository(hub_dir, offline_keys_dir=offline_keys_dir).add_release_targets(
            [ReleaseTargetEntry(target_path=target_path, local_file=staged, serve_via_tuf=True)]
        )


def set_policy(hub_dir: HubDir, group: str, policy_file: Path,
               offline_keys_dir: Path | None = None, actor: str = "admin",
               dry_run: bool = False) -> StoredPolicy:
    """Validate POLICY_FILE and publish it as group's signed policy. A bad file, or a
    signing failure (no release key here), changes nothing: the old policy stays.
    `dry_run` stops after validating: nothing is written, signed or audited."""
    hub_dir.require_initialized()
    _check_group(group)
    try:
        data = policy_file.read_bytes()
    except OSError as exc:
        raise PublishError(f"{policy_file}: cannot read: {exc.strerror}") from None
    Policy.from_toml(data, str(policy_file))  # raises PolicyError naming the key
    digest = hashlib.sha256(data).hexdigest()
    if dry_run:
        return StoredPolicy(group, data.decode("utf-8"), digest, utc_now(), actor)
    database = HubDatabase(hub_dir.database)
    try:
        ensure_schema(database)
        now = utc_now()
        with database.transaction() as db:
            db.execute(
                "INSERT INTO policies (grp, toml, sha256, set_at, set_by) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT(grp) DO UPDATE SET toml = excluded.toml, sha256 = excluded.sha256,"
                " set_at = excluded.set_at, set_by = excluded.set_by",
                (group, data.decode("utf-8"), digest, now, actor),
            )
            database.audit(db, actor, "policy.set", policy_target_path(group), sha256=digest)
            _sign_small_target(hub_dir, policy_target_path(group), data, offline_keys_dir)
    finally:
        database.close()
    return StoredPolicy(group, data.decode("utf-8"), digest, now, actor)


def stored_policy(database: HubDatabase, group: str) -> StoredPolicy | None:
    ensure_schema(database)
    rows = database.query("SELECT * FROM policies WHERE grp = ?", (group,))
    if not rows:
        return None
    row = rows[0]
    return StoredPolicy(row["grp"], row["toml"], row["sha256"], row["set_at"], row["set_by"])


def group_policy(database: HubDatabase, group: str) -> Policy | None:
    """The group's policy in force, or None; a stored one that no longer validates (a
    newer hub's format) counts as none rather than stopping the hub."""
    stored = stored_policy(database, group)
    if stored is None:
        return None
    try:
        return stored.policy
    except PolicyError:
        return None


def assign_group(hub_dir: HubDir, device_id: str, group: str,
                 offline_keys_dir: Path | None = None, actor: str = "admin",
                 new_group: bool = False) -> None:
    """Sign `assignments/DEVICE.json` (offline key) and record the group in the database.
    The device uses the signed assignment over its agent.toml group."""
    hub_dir.require_initialized()
    _check_group(group)
    database = open_rollout_database(hub_dir.database)
    try:
        ensure_schema(database)
        if database.device(device_id) is None:
            raise UnknownDeviceError(f"no enrolled device {device_id!r} (see `devices list`)")
        with database.transaction() as db:
            known = known_groups(db) | {row[0] for row in db.execute("SELECT grp FROM policies")}
        if group not in known and not new_group:
            raise UnknownGroupError(
                f"unknown group {group!r}: no enrolled device is in it, it has no policy and "
                f"no admin created it (known: {', '.join(sorted(known)) or 'none'}); check "
                "the spelling, or pass --new-group to create it"
            )
        assignment = GroupAssignment(device_id=device_id, group=group)
        _sign_small_target(hub_dir, assignment_target_path(device_id), assignment.to_bytes(),
                           offline_keys_dir)
        set_device_group(database, device_id, group, actor)
        if new_group and group not in known:
            with database.transaction() as db:
                create_group(db, group, actor, datetime.now(UTC))
    finally:
        database.close()
