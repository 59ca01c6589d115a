"""When the hub last heard from each device: heartbeats, recorded in batches.

A healthy idle device sends the hub nothing but a signed heartbeat now and then
(agent/heartbeat.py); its static-file polls name no one, and may not even reach the hub
(a CDN can serve them). `POST /api/v1/heartbeat` checks the device's signature (so a
neighbour cannot keep a dead device looking alive, nor a live one looking dead), that
`issued_at` is within five minutes of the hub's clock and later than the last heartbeat
taken from that device (a captured one cannot be replayed), and notes the hub's time.

`LastSeenBatch` keeps those times in memory and writes them in one transaction a few
seconds later (`FLUSH_SECONDS`), so a fleet's heartbeats cost one fsync per batch, not
one per device; idle, its task sleeps until a heartbeat arrives. `devices list` and
`plan` read `devices.last_seen`, which results and enrollment set as well.

A heartbeat that carries the audit chain's head (agent/wire/audit_head.py) is kept, as
received, as that device's witness of it (hub/audit/witnesses.py), in the same batch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import trio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from agent.errors import SignatureError
from agent.wire.heartbeat import MAX_HEARTBEAT_BYTES, SignedHeartbeat
from hub.api.error_statuses import api_route
from hub.api.request_body import read_body
from hub.audit.witnesses import Witness, record
from hub.database import HubDatabase
from hub.devices.recent_request import verify_recent_request

log = logging.getLogger(__name__)

FLUSH_SECONDS = 3.0


def _stamp(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="seconds")


class LastSeenBatch:
    """Last-seen times waiting to be written, and the latest heartbeat taken per device."""

    def __init__(self, database_path: Path, flush_seconds: float = FLUSH_SECONDS) -> None:
        self.database_path = database_path
        self.flush_seconds = flush_seconds
        self.pending: dict[str, str] = {}
        self.witnesses: dict[str, Witness] = {}
        self._last_issued: dict[str, datetime] = {}
        self._arrived = trio.Event()

    @staticmethod
    def verify(database: HubDatabase, signed: SignedHeartbeat, now: datetime) -> datetime:
        """When the heartbeat was issued, if an accepted device signed it recently;
        raises UnknownDeviceError or SignatureError. Runs in a worker thread (it reads
        the device's key), so it changes nothing here."""
        heartbeat = signed.heartbeat
        _device, issued = verify_recent_request(database, heartbeat.device_id,
                                                heartbeat.issued_at, signed.verify,
                                                "heartbeat", now)
        return issued

    def note(self, device_id: str, issued: datetime, now: datetime,
             witness: Witness | None = None) -> None:
        """Take a verified heartbeat (in the event loop's thread, as `run` reads these):
        refused if not later than the last one taken from the device. `witness`: the
        audit head it carried, to keep."""
        last = self._last_issued.get(device_id)
        if last is not None and issued <= last:
            raise SignatureError(
                f"heartbeat from {device_id} issued at {_stamp(issued)}: not later than "
                f"the last one taken (replayed)")
        self._last_issued[device_id] = issued
        self.pending[device_id] = _stamp(now)
        if witness is not None:
            self.witnesses[device_id] = witness
        self._arrived.set()

    def write(self, batch: dict[str, str], witnesses: list[Witness] | None = None) -> None:
        """Write one batch in one transaction (never moving a time backwards)."""
        database = HubDatabase(self.database_path)
        try:
            with database.transaction() as db:
                db.executemany(
                    "UPDATE devices SET last_seen = ? WHERE device_id = ? AND "
                    "(last_seen IS NULL OR last_seen < ?)",
                    [(seen, device_id, seen) for device_id, seen in batch.items()])
                record(db, witnesses or [])
        finally:
            database.close()

    async def flush(self) -> int:
        """Write what is pending; returns how many devices. What fails to be written is
        kept for the next flush."""
        batch, self.pending = self.pending, {}
        witnesses, self.witnesses = self.witnesses, {}
        if not batch:
            return 0
        try:
            await trio.to_thread.run_sync(self.write, batch, list(witnesses.values()))
        except BaseException:
            for device_id, seen in batch.items():
                self.pending.setdefault(device_id, seen)
            for device_id, witness in witnesses.items():
                self.witnesses.setdefault(device_id, witness)
            raise
        return len(batch)

    async def run(self) -> None:
        """Flush a few seconds after heartbeats arrive; asleep while none do."""
        while True:
            await self._arrived.wait()
            await trio.sleep(self.flush_seconds)
            self._arrived = trio.Event()
            try:
                await self.flush()
            except Exception:  # noqa: BLE001 - a locked or full disk must not end serve
                log.exception("could not record devices' last contact; retried shortly")
                self._arrived.set()


def heartbeat_routes(batch: LastSeenBatch,
                     now: Callable[[], datetime] = lambda: datetime.now(UTC)
                     ) -> list[BaseRoute]:
    """POST /api/v1/heartbeat: a SignedHeartbeat in, `{"ok": true}` out."""

    async def heartbeat(request: Request) -> Response:
        body = await read_body(request, limit=MAX_HEARTBEAT_BYTES)
        signed = SignedHeartbeat.from_bytes(body, "heartbeat")

        moment = now()

        def work() -> datetime:
            database = HubDatabase(batch.database_path)
            try:
                return batch.verify(database, signed, moment)
            finally:
                database.close()

        heartbeat = signed.heartbeat
        issued = await trio.to_thread.run_sync(work)
        witness = None if heartbeat.audit_head is None else Witness(
            heartbeat.device_id, heartbeat.audit_head, heartbeat.issued_at, body,
            _stamp(moment))
        batch.note(heartbeat.device_id, issued, moment, witness)
        return JSONResponse({"ok": True})

    return [api_route("/api/v1/heartbeat", heartbeat, methods=["POST"])]
