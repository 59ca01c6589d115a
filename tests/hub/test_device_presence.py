"""Heartbeats over real HTTP to a served hub: only an accepted device's own, recent,
never-replayed heartbeat moves its last-seen time, and the times reach the database in
batches (hub/devices/presence.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import trio

from agent.device_identity import DeviceIdentity
from agent.heartbeat import HeartbeatSender
from agent.hub_contact import HubContact
from agent.journal import Journal
from agent.wire.heartbeat import Heartbeat, SignedHeartbeat
from hub.database import HubDatabase
from tests.fleet import free_port, start_agent, start_hub

OLD = "2026-01-01T00:00:00+00:00"


def last_seen(hub, device_id: str) -> str | None:
    database = HubDatabase(hub.hub_dir.database)
    try:
        device = database.device(device_id)
        return device.last_seen if device else None
    finally:
        database.close()


def set_last_seen(hub, device_id: str, when: str) -> None:
    database = HubDatabase(hub.hub_dir.database)
    try:
        with database.transaction() as db:
            db.execute("UPDATE devices SET last_seen = ? WHERE device_id = ?", (when, device_id))
    finally:
        database.close()


async def post(hub, signed: SignedHeartbeat) -> httpx.Response:
    async with httpx.AsyncClient(base_url=hub.url, timeout=10) as client:
        return await client.post("/api/v1/heartbeat", content=signed.to_bytes())


async def test_a_devices_heartbeat_moves_its_last_seen_and_forged_or_replayed_ones_do_not(
        tmp_path, nursery):
    hub = await start_hub(tmp_path, nursery)
    daemon, _ = await start_agent(hub, nursery, "node1", "127.0.0.2")
    device = daemon.identity.device_id
    set_last_seen(hub, device, OLD)

    neighbour = DeviceIdentity.load_or_create(tmp_path / "neighbour.key")
    now = datetime.now(UTC).isoformat(timespec="seconds")
    forged = SignedHeartbeat.sign(Heartbeat(device_id=device, issued_at=now),
                                  neighbour.private_key)
    assert (await post(hub, forged)).status_code == 403
    stale = SignedHeartbeat.sign(
        Heartbeat(device_id=device, issued_at=(datetime.now(UTC) - timedelta(minutes=6))
                  .isoformat(timespec="seconds")), daemon.identity.private_key)
    assert (await post(hub, stale)).status_code == 403
    unknown = SignedHeartbeat.sign(Heartbeat(device_id=neighbour.device_id, issued_at=now),
                                   neighbour.private_key)
    assert (await post(hub, unknown)).status_code == 404
    async with httpx.AsyncClient(base_url=hub.url, timeout=10) as client:
        garbage = await client.post("/api/v1/heartbeat", content=b"{not json")
        huge = await client.post("/api/v1/heartbeat", content=b"x" * 4096)
    assert garbage.status_code == 400 and "heartbeat" in garbage.json()["error"]
    assert huge.status_code == 413
    await trio.sleep(hub.server.last_seen.flush_seconds + 1)
    assert last_seen(hub, device) == OLD  # nothing refused moved it

    journal = Journal(tmp_path / "contact.db")
    sender = HeartbeatSender(hub.url, daemon.identity, HubContact(journal), 900, 10)
    assert await sender.send()
    assert last_seen(hub, device) == OLD  # batched: not written per heartbeat
    with trio.fail_after(hub.server.last_seen.flush_seconds + 5):
        while last_seen(hub, device) == OLD:
            await trio.sleep(0.2)
    assert last_seen(hub, device) >= now
    assert HubContact(journal).current()["reachable"] is True

    # Taken once; the same bytes again, as a neighbour who captured them would send them,
    # are refused.
    later = (datetime.now(UTC) + timedelta(minutes=2)).isoformat(timespec="seconds")
    captured = SignedHeartbeat.sign(Heartbeat(device_id=device, issued_at=later),
                                    daemon.identity.private_key)
    assert (await post(hub, captured)).status_code == 200
    replayed = await post(hub, captured)
    assert replayed.status_code == 403 and "replayed" in replayed.json()["error"]
    journal.close()
    nursery.cancel_scope.cancel()


async def test_a_heartbeat_the_hub_cannot_get_says_so_in_status_and_ends_nothing(tmp_path):
    journal = Journal(tmp_path / "contact.db")
    identity = DeviceIdentity.load_or_create(tmp_path / "device.key")
    port = free_port("127.0.0.1")  # nothing listens there
    sender = HeartbeatSender(f"http://127.0.0.1:{port}", identity, HubContact(journal), 900, 5)
    assert not await sender.send()
    contact = HubContact(journal).current()
    assert contact["reachable"] is False
    assert contact["error"].startswith(f"heartbeat: cannot reach the hub at http://127.0.0.1:{port}")
    journal.close()
