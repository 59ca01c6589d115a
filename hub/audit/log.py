"""Reading the audit log by who, what, which subject and when: the CLI's `audit` list and
the console's filterable page ask the same question here."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hub.audit.entry import stored_detail
from hub.database import HubDatabase
from hub.errors import AuditQueryError

DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000


def query(database: HubDatabase, actor: str | None = None, action: str | None = None,
          subject: str | None = None, since: str | None = None, until: str | None = None,
          limit: int = DEFAULT_LIMIT) -> list[dict[str, Any]]:
    """The newest `limit` entries matching every filter given, oldest first.

    `actor` and `subject` match exactly; `action` exactly or, ending in `.*`, as a
    prefix (`rollout.*`); `since` / `until` are ISO 8601 UTC instants compared with the
    entry's `at` (since inclusive, until exclusive); a date alone means its midnight UTC,
    an instant without zone is taken as UTC. Each row: id, seq (None for a row
    outside the chain), at, actor, action, subject, detail, hash.
    """
    clauses, params = [], []  # type: list[str], list[Any]
    for column, value in (("a.actor", actor), ("a.subject", subject)):
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    if action is not None:
        if action.endswith(".*"):
            clauses.append("substr(a.action, 1, ?) = ?")
            params += [len(action) - 1, action[:-1]]
        else:
            clauses.append("a.action = ?")
            params.append(action)
    for operator, name, value in ((">=", "since", since), ("<", "until", until)):
        if value is not None:
            clauses.append(f"a.at {operator} ?")
            params.append(instant(value, name))
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    params.append(max(1, min(limit, MAX_LIMIT)))
    # Only the fixed clauses above are formatted in; every value is a bound parameter.
    sql = ("SELECT * FROM (SELECT a.id, c.seq, a.at, a.actor, a.action, a.subject, "  # noqa: S608
           "a.detail, c.hash FROM audit a LEFT JOIN audit_chain c ON c.audit_id = a.id "
           f"{where} ORDER BY a.id DESC LIMIT ?) ORDER BY id")
    rows = database.query(sql, tuple(params))
    return [{**dict(row), "detail": stored_detail(row["detail"])} for row in rows]


def instant(text: str, name: str) -> str:
    """`text` as the stored form of `at` (ISO 8601, UTC, seconds), so strings compare
    as instants."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise AuditQueryError(
            f"{name} {text!r}: not an ISO 8601 date or instant (e.g. 2026-05-01 or "
            "2026-05-01T08:00:00+02:00)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).isoformat(timespec="seconds")
