"""Console admin accounts: a name, a role, and an argon2id password hash.

Two roles: `admin` may change things (pause a rollout, ...), `auditor` may read
everything and change nothing. Passwords are hashed with argon2id (argon2-cffi's
defaults, RFC 9106's second recommended profile: 64 MiB, 3 passes, 4 lanes): memory-hard,
so a stolen database costs an attacker memory per guess, not just time. A password
change or an account's removal ends that account's sessions in the same transaction,
and every change is audited before it is committed.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from hub.console.sessions import revoke_sessions
from hub.database import HubDatabase, utc_now
from hub.errors import AdminAccountError

SCHEMA = """
CREATE TABLE IF NOT EXISTS console_admins (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL CHECK (role IN ('admin', 'auditor')),
    password_hash TEXT NOT NULL,
    created_at TEXT NOT NULL,
    password_changed_at TEXT NOT NULL
);
"""

ROLES = ("auditor", "admin")
"""Ascending: each role may do what the ones before it may."""

NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024

_hasher = PasswordHasher()
# Verified when the account does not exist, so a wrong name costs as long as a wrong
# password and timing does not tell which names exist.
_DUMMY_HASH = _hasher.hash("not a password of any account")


@dataclass(frozen=True)
class Admin:
    name: str
    role: str

    def may(self, role: str) -> bool:
        """Whether this account holds `role` or a stronger one."""
        return ROLES.index(self.role) >= ROLES.index(role)


def check_name(name: str) -> str:
    if not NAME_PATTERN.fullmatch(name):
        raise AdminAccountError(
            f"admin name {name!r}: use 1-64 of a-z 0-9 . _ - (starting with a letter or digit)"
        )
    return name


def check_role(role: str) -> str:
    if role not in ROLES:
        raise AdminAccountError(f"role {role!r}: use one of {', '.join(ROLES)}")
    return role


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AdminAccountError(
            f"password too short: use at least {MIN_PASSWORD_LENGTH} characters"
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise AdminAccountError(f"password longer than {MAX_PASSWORD_LENGTH} characters")
    return password


def hash_password(password: str) -> str:
    return _hasher.hash(check_password(password))


def add_admin(database: HubDatabase, name: str, role: str, password: str, actor: str) -> Admin:
    check_name(name)
    check_role(role)
    hashed = hash_password(password)  # before the transaction: it takes a while
    with database.transaction() as db:
        if _row(db, name) is not None:
            raise AdminAccountError(f"admin {name!r} exists already")
        database.audit(db, actor, "admin.add", name, role=role)
        now = utc_now()
        db.execute(
            "INSERT INTO console_admins (name, role, password_hash, created_at, "
            "password_changed_at) VALUES (?, ?, ?, ?, ?)", (name, role, hashed, now, now),
        )
    return Admin(name, role)


def list_admins(database: HubDatabase) -> list[dict[str, str]]:
    return [dict(row) for row in database.query(
        "SELECT name, role, created_at, password_changed_at FROM console_admins ORDER BY name"
    )]


def remove_admin(database: HubDatabase, name: str, actor: str) -> None:
    with database.transaction() as db:
        _require(db, name)
        database.audit(db, actor, "admin.remove", name)
        db.execute("DELETE FROM console_admins WHERE name = ?", (name,))
        revoke_sessions(db, name)


def set_password(database: HubDatabase, name: str, password: str, actor: str) -> None:
    hashed = hash_password(password)
    with database.transaction() as db:
        _require(db, name)
        database.audit(db, actor, "admin.passwd", name)
        db.execute(
            "UPDATE console_admins SET password_hash = ?, password_changed_at = ? "
            "WHERE name = ?", (hashed, utc_now(), name),
        )
        revoke_sessions(db, name)


def verify_login(database: HubDatabase, name: str, password: str) -> Admin | None:
    """The account if `password` is its password, else None (also for an unknown name,
    after as much work as a known one takes). A hash made with older parameters is
    re-hashed with the current ones."""
    rows = database.query("SELECT * FROM console_admins WHERE name = ?", (name,))
    row = rows[0] if rows and NAME_PATTERN.fullmatch(name) else None
    stored = row["password_hash"] if row is not None else _DUMMY_HASH
    try:
        _hasher.verify(stored, password[:MAX_PASSWORD_LENGTH])
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return None
    if row is None:
        return None
    if _hasher.check_needs_rehash(stored):
        with database.transaction() as db:
            db.execute("UPDATE console_admins SET password_hash = ? WHERE name = ?",
                       (_hasher.hash(password), name))
    return Admin(row["name"], row["role"])


def _row(db: sqlite3.Connection, name: str) -> sqlite3.Row | None:
    return db.execute("SELECT * FROM console_admins WHERE name = ?", (name,)).fetchone()


def _require(db: sqlite3.Connection, name: str) -> sqlite3.Row:
    row = _row(db, name)
    if row is None:
        raise AdminAccountError(f"no admin named {name!r} (see `meisitong-hub admins list`)")
    return row
