"""Console sessions, kept on the server: the cookie holds a random id, the database
only its SHA-256, so a read of the database (a backup, an evidence bundle) yields no
session anyone can use.

A session ends at whichever comes first: `idle_seconds` without a request, its absolute
`lifetime_seconds`, logout, its account's password change or removal (both delete the
account's sessions in their own transaction). Its last use is written at most once a
minute (a tenth of the idle
time if that is shorter), so reading pages is not a database write per request.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
from dataclasses import dataclass

from hub.database import HubDatabase

SCHEMA = """
CREATE TABLE IF NOT EXISTS console_sessions (
    id_sha256 TEXT PRIMARY KEY,
    admin TEXT NOT NULL,
    csrf_token TEXT NOT NULL,
    created_at REAL NOT NULL,
    last_used_at REAL NOT NULL,
    client TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS console_sessions_admin ON console_sessions (admin);
"""

TOUCH_EVERY_SECONDS = 60.0


@dataclass(frozen=True)
class SessionPolicy:
    idle_seconds: float
    lifetime_seconds: float


@dataclass(frozen=True)
class Session:
    admin_name: str
    role: str
    csrf_token: str
    id_sha256: str


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def open_session(database: HubDatabase, admin_name: str, client: str, now: float) -> str:
    """A new session for `admin_name`, audited as its login; returns the id the cookie
    carries."""
    session_id = secrets.token_urlsafe(32)
    with database.transaction() as db:
        database.audit(db, f"admin:{admin_name}", "console.login", admin_name, address=client)
        db.execute(
            "INSERT INTO console_sessions (id_sha256, admin, csrf_token, created_at, "
            "last_used_at, client) VALUES (?, ?, ?, ?, ?, ?)",
            (_digest(session_id), admin_name, secrets.token_urlsafe(32), now, now, client),
        )
    return session_id


def find_session(
    database: HubDatabase, session_id: str, policy: SessionPolicy, now: float
) -> Session | None:
    """The live session `session_id` names, with its account's current role; None if
    there is none, it expired (then it is deleted), or its account is gone."""
    if not session_id or len(session_id) > 128:
        return None
    digest = _digest(session_id)
    rows = database.query(
        "SELECT s.*, a.role FROM console_sessions s JOIN console_admins a ON a.name = s.admin "
        "WHERE s.id_sha256 = ?", (digest,),
    )
    if not rows:
        return None
    row = rows[0]
    if (now - row["last_used_at"] > policy.idle_seconds
            or now - row["created_at"] > policy.lifetime_seconds):
        with database.transaction() as db:
            db.execute("DELETE FROM console_sessions WHERE id_sha256 = ?", (digest,))
        return None
    if now - row["last_used_at"] >= min(TOUCH_EVERY_SECONDS, policy.idle_seconds / 10):
        with database.transaction() as db:
            db.execute("UPDATE console_sessions SET last_used_at = ? WHERE id_sha256 = ?",
                       (now, digest))
    return Session(row["admin"], row["role"], row["csrf_token"], digest)


def close_session(database: HubDatabase, session: Session, client: str) -> None:
    """Ends `session`, audited as its account's logout."""
    with database.transaction() as db:
        database.audit(db, f"admin:{session.admin_name}", "console.logout",
                       session.admin_name, address=client)
        db.execute("DELETE FROM console_sessions WHERE id_sha256 = ?", (session.id_sha256,))


def revoke_sessions(db: sqlite3.Connection, admin_name: str) -> None:
    """Ends every session of `admin_name`, inside the caller's transaction."""
    db.execute("DELETE FROM console_sessions WHERE admin = ?", (admin_name,))


def forget_expired(database: HubDatabase, policy: SessionPolicy, now: float) -> int:
    """Deletes sessions past either expiry (ones never used again would stay otherwise)."""
    with database.transaction() as db:
        return db.execute(
            "DELETE FROM console_sessions WHERE last_used_at < ? OR created_at < ?",
            (now - policy.idle_seconds, now - policy.lifetime_seconds),
        ).rowcount
