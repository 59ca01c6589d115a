"""The disruption budget: at most K devices of a group (or of one label value, e.g. one
cluster) installing or rebooting at once, enforced with leases the hub grants — the way
Flatcar's locksmith uses an etcd semaphore.

A lease has an expiry; its holder renews it while it works and gives it back when done.
A holder that dies (power cut, kill -9) stops renewing, and its lease is reclaimed once
expired, so the budget heals by itself. K and the lifetime come from the policy of the
device's group as the hub has it (hub/policy/policies.py), never from what the device asks.

Requests are signed by the device key and must be recent (hub/devices/recent_request.py).
Store functions take `now`, so tests and simulations drive them on a mock clock.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from agent.policy.model import Disruption
from agent.wire.lease import LeaseAnswer, LeaseRequest, SignedLeaseRequest
from hub.database import HubDatabase
from hub.devices.recent_request import verify_recent_request
from hub.hub_dir import HubDir
from hub.policy.policies import group_policy

SCHEMA = """
CREATE TABLE IF NOT EXISTS leases (
    grp TEXT NOT NULL,
    scope TEXT NOT NULL,
    device_id TEXT NOT NULL,
    release TEXT NOT NULL,
    acquired_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    PRIMARY KEY (grp, scope, device_id)
)
"""


def _stamp(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="seconds")


def ensure_schema(database: HubDatabase) -> None:
    database.query(SCHEMA)


def acquire_lease(database: HubDatabase, request: LeaseRequest, budget: Disruption | None,
                  now: datetime) -> LeaseAnswer:
    """Grant (or renew) the device's lease in its scope if fewer than K others hold one."""
    ensure_schema(database)
    # The device may ask for less than the policy's lifetime, never for more.
    ttl = timedelta(seconds=request.ttl_seconds)
    if budget is not None:
        ttl = min(ttl, timedelta(minutes=budget.lease_minutes))
    key = (request.group, request.scope)
    with database.transaction() as db:
        expired = db.execute(
            "SELECT device_id, release FROM leases WHERE grp = ? AND scope = ? AND "
            "expires_at <= ?", (*key, _stamp(now))).fetchall()
        for row in expired:
            database.audit(db, "hub", "lease.reclaim", row["device_id"], group=request.group,
                           scope=request.scope, release=row["release"])
        db.execute("DELETE FROM leases WHERE grp = ? AND scope = ? AND expires_at <= ?",
                   (*key, _stamp(now)))
        holders = db.execute(
            "SELECT device_id, expires_at FROM leases WHERE grp = ? AND scope = ?", key
        ).fetchall()
        mine = any(row["device_id"] == request.device_id for row in holders)
        limit = budget.max_concurrent if budget else None
        if not mine and limit is not None and len(holders) >= limit:
            return LeaseAnswer(
                granted=False, held=len(holders), max_concurrent=limit,
                retry_at=min(row["expires_at"] for row in holders),
                reason=f"{len(holders)} of {limit} leases held",
            )
        expires = _stamp(now + ttl)
        db.execute(
            "INSERT INTO leases (grp, scope, device_id, release, acquired_at, expires_at) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(grp, scope, device_id) DO UPDATE SET "
            "release = excluded.release, expires_at = excluded.expires_at",
            (*key, request.device_id, request.release, _stamp(now), expires),
        )
        if not mine:
            database.audit(db, f"device:{request.device_id}", "lease.grant", request.release,
                           group=request.group, scope=request.scope, expires_at=expires)
    return LeaseAnswer(granted=True, held=len(holders) + (0 if mine else 1),
                       max_concurrent=limit, expires_at=expires)


def release_lease(database: HubDatabase, request: LeaseRequest) -> LeaseAnswer:
    ensure_schema(database)
    with database.transaction() as db:
        gone = db.execute(
            "DELETE FROM leases WHERE grp = ? AND scope = ? AND device_id = ?",
            (request.group, request.scope, request.device_id)).rowcount
        if gone:
            database.audit(db, f"device:{request.device_id}", "lease.release", request.release,
                           group=request.group, scope=request.scope)
    return LeaseAnswer(granted=False, held=0, reason="released" if gone else "not held")


def held_leases(database: HubDatabase, now: datetime) -> list[dict[str, str]]:
    ensure_schema(database)
    return [dict(row) for row in database.query(
        "SELECT * FROM leases WHERE expires_at > ? ORDER BY grp, scope, acquired_at",
        (_stamp(now),))]


def handle_lease_request(database: HubDatabase, signed: SignedLeaseRequest,
                         now: datetime) -> LeaseAnswer:
    """Verify who asks and when, then acquire or release under the group's budget."""
    request = signed.request
    device, _issued = verify_recent_request(database, request.device_id, request.issued_at,
                                            signed.verify, "lease request", now)
    # The group is the hub's (enrolled, or assigned by the admin), not the one the
    # device names: a device claiming a group without a budget must not escape its own.
    request = request.model_copy(update={"group": device.group})
    if request.action == "release":
        return release_lease(database, request)
    policy = group_policy(database, request.group)
    budget = policy.disruption if policy is not None else None
    return acquire_lease(database, request, budget, now)


def lease_routes(hub_dir: HubDir,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> list[BaseRoute]:
    """POST /api/v1/leases: a SignedLeaseRequest in, a LeaseAnswer out."""
    import trio

    from hub.api.error_statuses import api_route
    from hub.api.request_body import read_body

    async def leases(request: Request) -> Response:
        body = await read_body(request, limit=8 * 1024)
        signed = SignedLeaseRequest.from_bytes(body, "lease request")

        def work() -> LeaseAnswer:
            database = HubDatabase(hub_dir.database)
            try:
                return handle_lease_request(database, signed, now())
            finally:
                database.close()

        answer = await trio.to_thread.run_sync(work)
        return JSONResponse(answer.model_dump(mode="json"))

    return [api_route("/api/v1/leases", leases, methods=["POST"])]
