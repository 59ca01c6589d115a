"""The agent's durable journal: deployments, their transitions, the result outbox.

SQLite in WAL mode with synchronous=FULL, so a transition is on disk before the action
it announces starts. A terminal transition and its result record are written in one
transaction: a result can be neither lost nor duplicated by a crash.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.deployment_detail import DeploymentDetail
from agent.lifecycle import TERMINAL, State, check_transition
from agent.sqlite_durable import immediate_transaction, open_durable

SCHEMA = """
CREATE TABLE IF NOT EXISTS deployments (
    release TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    detail TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS transitions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    release TEXT NOT NULL,
    from_state TEXT,
    to_state TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    record_id TEXT PRIMARY KEY,
    release TEXT NOT NULL,
    body BLOB NOT NULL,
    created_at TEXT NOT NULL,
    delivered_at TEXT
);
CREATE TABLE IF NOT EXISTS installed (
    name TEXT PRIMARY KEY,
    version TEXT NOT NULL,
    release TEXT NOT NULL,
    installed_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS agent_status (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
"""


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Deployment:
    release: str
    name: str
    version: str
    state: State
    reason: str
    detail: DeploymentDetail
    created_at: str
    updated_at: str

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL

    @property
    def blocks_installs(self) -> bool:
        """Its revert failed and no admin has cleared it: the device may be in neither the
        old nor the new state, so nothing is installed and its snapshot, work files and
        payload are kept for the admin. The one place this is decided."""
        return self.state is State.REVERT_FAILED and not self.detail.cleared_at


class Journal:
    """One connection per journal; open it in the thread (or task) that uses it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = open_durable(path)
        self._db.executescript(SCHEMA)
        path.chmod(0o600)

    def close(self) -> None:
        self._db.close()

    def _transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        return immediate_transaction(self._db)

    def get(self, release: str) -> Deployment | None:
        row = self._db.execute(
            "SELECT release, name, version, state, reason, detail, created_at, updated_at "
            "FROM deployments WHERE release = ?",
            (release,),
        ).fetchone()
        return _deployment(row) if row else None

    def deployments(self) -> list[Deployment]:
        rows = self._db.execute(
            "SELECT release, name, version, state, reason, detail, created_at, updated_at "
            "FROM deployments ORDER BY created_at, release"
        ).fetchall()
        return [_deployment(row) for row in rows]

    def unfinished(self) -> list[Deployment]:
        return [d for d in self.deployments() if not d.finished]

    def create(
        self, release: str, name: str, version: str, detail: dict[str, Any] | None = None
    ) -> Deployment:
        """A new deployment; `detail` pins the signed release data it acts on, so recovery
        after a crash needs no network."""
        now = utc_now()
        with self._transaction() as db:
            db.execute(
                "INSERT INTO deployments (release, name, version, state, detail, created_at, "
                "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (release, name, version, State.PENDING,
                 DeploymentDetail.parse(detail or {}, f"new deployment {release}").to_json(),
                 now, now),
            )
            db.execute(
                "INSERT INTO transitions (release, from_state, to_state, reason, at) "
                "VALUES (?, NULL, ?, 'new', ?)",
                (release, State.PENDING, now),
            )
        deployment = self.get(release)
        assert deployment is not None
        return deployment

    def transition(
        self,
        release: str,
        new_state: State,
        reason: str = "",
        detail: dict[str, Any] | None = None,
        result: tuple[str, bytes] | None = None,
        installed: tuple[str, str] | None = None,
    ) -> Deployment:
        """Record `new_state` durably; with it, atomically, a result for the outbox
        (record_id, body) and what is now installed (name, version)."""
        now = utc_now()
        with self._transaction() as db:
            current = self.get(release)
            if current is None:
                raise KeyError(release)
            check_transition(current.state, new_state)
            merged = current.detail.updated(detail or {}, f"{release} entering {new_state}")
            db.execute(
                "UPDATE deployments SET state = ?, reason = ?, detail = ?, updated_at = ? "
                "WHERE release = ?",
                (new_state, reason, merged.to_json(), now, release),
            )
            db.execute(
                "INSERT INTO transitions (release, from_state, to_state, reason, at) "
                "VALUES (?, ?, ?, ?, ?)",
                (release, current.state, new_state, reason, now),
            )
            if result is not None:
                db.execute(
                    "INSERT INTO outbox (record_id, release, body, created_at) VALUES (?,?,?,?)",
                    (result[0], release, result[1], now),
                )
            if new_state is State.REVERT_FAILED:
                self._write_alert(db)
            if installed is not None:
                db.execute(
                    "INSERT INTO installed (name, version, release, installed_at) "
                    "VALUES (?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET "
                    "version = excluded.version, release = excluded.release, "
                    "installed_at = excluded.installed_at",
                    (installed[0], installed[1], release, now),
                )
        updated = self.get(release)
        assert updated is not None
        return updated

    def count_start(self, release: str, key: str) -> int:
        """Add one to the counter `key` in the deployment's detail (durably); its new value.

        The boot counter: the daemon counts every start that finds a deployment
        between install and commit, before it resumes it.
        """
        with self._transaction() as db:
            current = self.get(release)
            if current is None:
                raise KeyError(release)
            count = current.detail.count(key) + 1
            counted = current.detail.updated({key: count}, f"{release}: counting {key}")
            db.execute(
                "UPDATE deployments SET detail = ?, updated_at = ? WHERE release = ?",
                (counted.to_json(), utc_now(), release),
            )
        return count

    def note(self, release: str, **detail: Any) -> None:
        """Merge `detail` into a deployment's record without changing its state."""
        with self._transaction() as db:
            current = self.get(release)
            if current is None:
                raise KeyError(release)
            noted = current.detail.updated(detail, f"{release}: note")
            db.execute(
                "UPDATE deployments SET detail = ?, updated_at = ? WHERE release = ?",
                (noted.to_json(), utc_now(), release),
            )

    def blocking(self) -> list[Deployment]:
        """Deployments whose revert failed and no admin has cleared: while there is one,
        the agent installs nothing (`meisitong-agent clear`)."""
        return [d for d in self.deployments() if d.blocks_installs]

    def _write_alert(self, db: sqlite3.Connection) -> None:
        """The `alert` status line, from the failed reverts that still block (read in the
        open transaction): written with each revert-failed and each clear, so it goes only
        with the last blocking deployment."""
        alert = "; ".join(f"revert of {d.release} failed: {d.reason}" for d in self.blocking())
        db.execute(
            "INSERT INTO agent_status (key, value, updated_at) VALUES ('alert', ?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value, "
            "updated_at = excluded.updated_at",
            (alert, utc_now()),
        )

    def clear(self, release: str, by: str) -> Deployment:
        """An admin says the device is sound again after `release`'s failed revert.

        Journaled as a note on the deployment and a row in its transitions (the state
        stays revert-failed: that is what happened)."""
        now = utc_now()
        with self._transaction() as db:
            current = self.get(release)
            if current is None or current.state is not State.REVERT_FAILED:
                raise KeyError(release)
            marked = current.detail.updated({"cleared_at": now, "cleared_by": by},
                                            f"{release}: clear")
            db.execute(
                "UPDATE deployments SET detail = ?, updated_at = ? WHERE release = ?",
                (marked.to_json(), now, release),
            )
            db.execute(
                "INSERT INTO transitions (release, from_state, to_state, reason, at) "
                "VALUES (?, ?, ?, ?, ?)",
                (release, State.REVERT_FAILED, State.REVERT_FAILED, f"cleared by {by}", now),
            )
            self._write_alert(db)
        cleared = self.get(release)
        assert cleared is not None
        return cleared

    def transitions(self, release: str) -> list[tuple[str | None, str, str, str]]:
        return self._db.execute(
            "SELECT from_state, to_state, reason, at FROM transitions WHERE release = ? "
            "ORDER BY id",
            (release,),
        ).fetchall()

    def installed_version(self, name: str) -> str | None:
        row = self._db.execute("SELECT version FROM installed WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None

    def installed_releases(self) -> list[tuple[str, str, str]]:
        """(name, version, release) of every release installed, by name."""
        return self._db.execute(
            "SELECT name, version, release FROM installed ORDER BY name").fetchall()

    def undelivered(self) -> list[tuple[str, bytes]]:
        return self._db.execute(
            "SELECT record_id, body FROM outbox WHERE delivered_at IS NULL ORDER BY created_at"
        ).fetchall()

    def mark_delivered(self, record_id: str) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE outbox SET delivered_at = ? WHERE record_id = ?", (utc_now(), record_id)
            )

    def state_counts(self) -> dict[str, int]:
        """How many deployments are in each lifecycle state (metrics: one grouped read)."""
        return {state: count for state, count in self._db.execute(
            "SELECT state, COUNT(*) FROM deployments GROUP BY state")}

    def outbox_counts(self) -> tuple[int, int]:
        """(delivered, waiting)."""
        row = self._db.execute(
            "SELECT SUM(delivered_at IS NOT NULL), SUM(delivered_at IS NULL) FROM outbox"
        ).fetchone()
        return int(row[0] or 0), int(row[1] or 0)

    def set_status(self, key: str, value: str) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO agent_status (key, value, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value, "
                "updated_at = excluded.updated_at",
                (key, value, utc_now()),
            )

    def status(self) -> dict[str, tuple[str, str]]:
        rows = self._db.execute("SELECT key, value, updated_at FROM agent_status").fetchall()
        return {key: (value, at) for key, value, at in rows}


def _deployment(row: tuple[Any, ...]) -> Deployment:
    release, name, version, state, reason, detail, created_at, updated_at = row
    parsed = DeploymentDetail.parse(json.loads(detail), f"journal: deployment {release}")
    return Deployment(release, name, version, State(state), reason, parsed, created_at,
                      updated_at)
