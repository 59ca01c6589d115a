"""Devices: the list, and one device's page — what the hub enrolled, where it stands in
each rollout its group sees, its results, its history (the audit log's entries about it
and by it, hub/audit/log.py) and its software inventory with what changed when, as its
signed inventory records said (hub/inventory/store.py)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import trio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from hub.audit.log import query as audit_query
from hub.console.auth import console_database, console_page, console_state, render, wants_json
from hub.console.device_record import (
    device_in_rollouts,
    device_list,
    device_results,
    device_row,
    rollouts_seen_by,
)
from hub.console.pages.rollouts import live_rollouts
from hub.console.rollout_progress import swarm_hashes, swarm_view
from hub.database import HubDatabase
from hub.inventory.store import history as inventory_history
from hub.inventory.store import latest as latest_inventory
from hub.rollouts.store import open_rollout_database

HISTORY_LIMIT = 200


def _devices(database: HubDatabase) -> list[dict[str, Any]]:
    with database.read_transaction() as db:
        return device_list(db)


@console_page()
async def devices_page(request: Request) -> Response:
    return render(request, "devices.html", devices=await console_database(request, _devices))


@console_page()
async def devices_api(request: Request) -> Response:
    return JSONResponse(await console_database(request, _devices))


def _history(database: HubDatabase, device_id: str) -> list[dict[str, Any]]:
    """Entries about the device and entries the device made itself, newest first."""
    about = audit_query(database, subject=device_id, limit=HISTORY_LIMIT)
    by = audit_query(database, actor=f"device:{device_id}", limit=HISTORY_LIMIT)
    merged = {entry["id"]: entry for entry in [*about, *by]}
    return sorted(merged.values(), key=lambda entry: entry["id"], reverse=True)[:HISTORY_LIMIT]


async def device_details(request: Request, device_id: str) -> dict[str, Any] | None:
    hub_dir = console_state(request).hub_dir

    def first() -> tuple[dict[str, Any] | None, list[Any], dict[str, tuple[bytes, ...]]]:
        database = open_rollout_database(hub_dir.database)
        try:
            with database.read_transaction() as db:
                device = device_row(db, device_id)
                if device is None:
                    return None, [], {}
                records = rollouts_seen_by(db, device["group"])
                return device, records, {r.release: swarm_hashes(db, r.release)
                                         for r in records}
        finally:
            database.close()

    device, records, hashes = await trio.to_thread.run_sync(first)
    if device is None:
        return None
    swarms = live_rollouts(request).swarms
    views = {release: swarm_view(swarms, found) for release, found in hashes.items()}

    def rest(database: HubDatabase) -> dict[str, Any]:
        with database.read_transaction() as db:
            placed = device_in_rollouts(db, device_id, records, views)
            results = device_results(db, device_id)
        inventory = latest_inventory(database, device_id)
        return {"device": device, "rollouts": placed, "results": results,
                "history": _history(database, device_id),
                "inventory": asdict(inventory) if inventory else None,
                "inventory_changes": [asdict(change) for change in
                                      inventory_history(database, device_id)]}

    return await console_database(request, rest)


def _not_found(request: Request, device_id: str) -> Response:
    message = f"no device {device_id[:80]!r} is enrolled"
    if wants_json(request):
        return JSONResponse({"error": message}, status_code=404)
    return render(request, "error.html", status_code=404, message=message)


@console_page()
async def device_page(request: Request) -> Response:
    device_id = request.path_params["device_id"]
    details = await device_details(request, device_id)
    if details is None:
        return _not_found(request, device_id)
    return render(request, "device.html", **details)


@console_page()
async def device_api(request: Request) -> Response:
    device_id = request.path_params["device_id"]
    details = await device_details(request, device_id)
    if details is None:
        return _not_found(request, device_id)
    return JSONResponse(details)


routes: list[BaseRoute] = [
    Route("/devices", devices_page, methods=["GET"]),
    Route("/api/devices", devices_api, methods=["GET"]),
    Route("/devices/{device_id}", device_page, methods=["GET"]),
    Route("/api/devices/{device_id}", device_api, methods=["GET"]),
]
