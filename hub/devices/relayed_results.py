"""Results relayed by gossip: any agent that reaches the hub hands over what it lacks.

Two calls, so a relay sends each result's body once at most: `POST
/api/v1/results/missing` with (device, record id) pairs answers which the hub does not
hold; `POST /api/v1/results/batch` takes those and answers which pairs it now holds.
Ingestion is `results_store.ingest_result`, one record at a time: idempotent by
(device, record id), and a record whose device signature does not
verify with the enrolled key is refused (and logged) without affecting the others.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from agent.errors import AgentError
from agent.wire.gossip import MAX_RELAYED_RESULTS, RecordIds, RecordKey, RelayedResults
from agent.wire.result import MAX_RECORD_BYTES
from hub.api.error_statuses import api_route
from hub.api.request_body import read_json_model
from hub.database import HubDatabase
from hub.devices.results_store import ingest_result
from hub.errors import UnknownDeviceError

log = logging.getLogger(__name__)

MAX_BATCH_BODY_BYTES = MAX_RELAYED_RESULTS * MAX_RECORD_BYTES


def missing_results(database: HubDatabase, keys: list[RecordKey]) -> list[RecordKey]:
    """The (device, record id) pairs of `keys` the hub holds no result for, in order."""
    held: set[tuple[str, str]] = set()
    for start in range(0, len(keys), 400):
        chunk = keys[start:start + 400]
        marks = ",".join("(?, ?)" for _ in chunk)
        held.update(
            (row["device_id"], row["record_id"]) for row in database.query(
                "SELECT device_id, record_id FROM results "  # noqa: S608
                f"WHERE (device_id, record_id) IN (VALUES {marks})",
                tuple(part for key in chunk for part in (key.device_id, key.record_id)),
            )
        )
    return [key for key in keys if (key.device_id, key.record_id) not in held]


def missing_record_ids(database: HubDatabase, record_ids: list[str]) -> list[str]:
    """For relays that send bare record ids: those no device has a result under."""
    held: set[str] = set()
    for start in range(0, len(record_ids), 500):
        chunk = record_ids[start:start + 500]
        marks = ",".join("?" * len(chunk))
        held.update(
            row["record_id"] for row in database.query(
                f"SELECT record_id FROM results WHERE record_id IN ({marks})",  # noqa: S608
                tuple(chunk),
            )
        )
    return [record_id for record_id in record_ids if record_id not in held]


def ingest_relayed(database: HubDatabase, batch: RelayedResults,
                   on_ingested: Callable[[str, bool], None] = lambda outcome, stored: None,
                   ) -> dict[str, Any]:
    stored: list[str] = []
    duplicate: list[str] = []
    held: list[dict[str, str]] = []
    refused: list[dict[str, str]] = []
    for signed in batch.results:
        key = {"device_id": signed.record.device_id, "record_id": signed.record.record_id}
        try:
            outcome = ingest_result(database, signed)
        except (AgentError, UnknownDeviceError) as exc:
            refused.append({**key, "error": str(exc)})
            continue
        on_ingested(signed.record.outcome, outcome.stored)
        (stored if outcome.stored else duplicate).append(key["record_id"])
        held.append(key)
    if refused:
        log.warning("relayed batch: refused %d of %d results (first: %s)",
                    len(refused), len(batch.results), refused[0]["error"])
    return {"held": held, "stored": stored, "duplicate": duplicate, "refused": refused}


def relay_routes(
    in_database: Callable[[Callable[[HubDatabase], Any]], Awaitable[Any]],
    on_ingested: Callable[[str, bool], None] = lambda outcome, stored: None,
) -> list[BaseRoute]:
    """The two routes; `in_database` runs a function with a database in a thread;
    `on_ingested(outcome, stored)` is told of every record that verified (from that
    thread)."""

    async def missing(request: Request) -> Response:
        ids = await read_json_model(request, RecordIds, request.url.path, 256 * 1024)
        lacking = await in_database(lambda db: missing_results(db, ids.records))
        old_style = await in_database(lambda db: missing_record_ids(db, ids.record_ids))
        return JSONResponse({"missing_records": [key.model_dump() for key in lacking],
                             "missing": old_style})

    async def batch(request: Request) -> Response:
        results = await read_json_model(
            request, RelayedResults, request.url.path, MAX_BATCH_BODY_BYTES
        )
        return JSONResponse(await in_database(lambda db: ingest_relayed(db, results, on_ingested)))

    return [
        api_route("/api/v1/results/missing", missing, methods=["POST"]),
        api_route("/api/v1/results/batch", batch, methods=["POST"]),
    ]

