"""The inventory API: devices post their signed records, relays ask what the hub lacks.

- `POST /api/v1/inventory`: one `SignedInventory` (at most MAX_INVENTORY_BYTES), from
  the device itself or a relay; 201 stored, 200 already held (or older than held), 409
  a diff whose base the hub lacks, 422 a diff that does not give its digest, and the
  usual 400/403/404/413 (hub/api/error_statuses.py).
- `POST /api/v1/inventory/missing`: `{"records": [{"device_id", "sequence"}]}` answers
  `{"missing": [...]}`, those newer than what the hub holds: a relay sends only those,
  so a site's inventories cross the WAN about once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from agent.wire.inventory import MAX_INVENTORY_BYTES, InventoryKeys, SignedInventory
from hub.api.error_statuses import api_route
from hub.api.request_body import read_body, read_json_model
from hub.database import HubDatabase
from hub.inventory.ingest import held_sequences, ingest_inventory


def inventory_routes(
    in_database: Callable[[Callable[[HubDatabase], Any]], Awaitable[Any]],
) -> list[BaseRoute]:
    async def post(request: Request) -> Response:
        body = await read_body(request, MAX_INVENTORY_BYTES)
        signed = SignedInventory.from_bytes(body, "inventory record")
        outcome = await in_database(lambda db: ingest_inventory(db, signed))
        return JSONResponse({"stored": outcome.stored, "sequence": outcome.sequence},
                            status_code=201 if outcome.stored else 200)

    async def missing(request: Request) -> Response:
        asked = await read_json_model(request, InventoryKeys, request.url.path, 128 * 1024)
        held = await in_database(
            lambda db: held_sequences(db, sorted({key.device_id for key in asked.records})))
        return JSONResponse({"missing": [
            key.model_dump() for key in asked.records
            if key.sequence > held.get(key.device_id, 0)]})

    return [
        api_route("/api/v1/inventory", post, methods=["POST"]),
        api_route("/api/v1/inventory/missing", missing, methods=["POST"]),
    ]
