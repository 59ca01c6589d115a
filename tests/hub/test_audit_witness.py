"""A real hub and a real agent daemon (in one trio run, over real HTTP): the served
timestamp carries the audit head, the agent's python-tuf client accepts it, and the
head the agent read goes back in its device-signed heartbeat, which the hub keeps as a
witness that `audit verify` checks with the device's public key."""

from __future__ import annotations

import trio

from hub.audit.anchor import anchor_head
from hub.audit.export import export_chain, export_witnesses, served_roots
from hub.audit.verify import verify_chain
from hub.database import HubDatabase
from tests.fleet import start_agent, start_hub


def exported(hub) -> tuple[list[dict], list[dict]]:
    database = HubDatabase(hub.hub_dir.database)
    try:
        return export_chain(database), export_witnesses(database)
    finally:
        database.close()


async def witnessed_seq(hub, device_id: str, seq: int) -> dict:
    with trio.fail_after(hub.server.last_seen.flush_seconds + 10):
        while True:
            witnesses = [w for w in exported(hub)[1] if w["device_id"] == device_id]
            if witnesses and witnesses[0]["seq"] == seq:
                return witnesses[0]
            await trio.sleep(0.2)


async def test_an_agent_witnesses_the_anchored_head_in_its_signed_heartbeat(tmp_path, nursery):
    hub = await start_hub(tmp_path, nursery)  # anchors the head before serving
    daemon, _ = await start_agent(hub, nursery, "node1", "127.0.0.2")
    device = daemon.identity.device_id
    await trio.to_thread.run_sync(daemon.metadata.refresh)
    first = daemon.metadata.audit_head()
    assert first is not None and first.seq == 2  # token.create, hub.init; enrolling came after
    assert await daemon.heartbeat.send()
    await witnessed_seq(hub, device, 2)

    # The head moves (the enrollment was audited); once anchored, the next heartbeat
    # names the new head and the hub keeps that one.
    moved = await trio.to_thread.run_sync(anchor_head, hub.hub_dir)
    assert moved is not None and moved.seq == 3
    await trio.to_thread.run_sync(daemon.metadata.refresh)
    assert daemon.metadata.audit_head() == moved
    assert await daemon.heartbeat.send()
    await witnessed_seq(hub, device, 3)

    entries, witnesses = exported(hub)
    report = verify_chain(entries, served_roots(hub.hub_dir),
                          (hub.hub_dir.metadata / "timestamp.json").read_bytes(), witnesses)
    assert report.ok, report.problems
    assert report.witnessed_devices == [device] and report.anchored_through == 3
    nursery.cancel_scope.cancel()
