"""Software inventories in site gossip (real nodes, mutual TLS, SQLite stores): a device's
signed record spreads to every peer as its own; one that another device signed, or that
was altered, is refused and its sender penalised; a site's large inventories go out in
deltas bounded in size, so no frame passes the limit."""

from __future__ import annotations

import pytest

from agent.inventory.records import build_record
from agent.wire.gossip import MAX_DELTA_BODY_CHARS
from agent.wire.inventory import SOFTWARE_FULL_KEY, SignedInventory
from tests.agent._gossip_site import SimulatedSite
from tests.inventory_packages import package_list, snapshot

AT = "2026-12-02T10:00:00+00:00"


@pytest.fixture
async def site(tmp_path, nursery):
    built = SimulatedSite.build(tmp_path, 4)
    await built.start(nursery)
    await built.converge()
    yield built
    built.close()


def body_for(node, sequence=1, signer=None, rows=None) -> str:
    record = build_record(snapshot(rows), node.device_id, sequence, AT, None)
    return SignedInventory.sign(record, signer or node.identity.private_key).to_bytes().decode()


async def test_a_devices_inventory_spreads_to_every_peer_as_its_own_signed_record(site):
    origin = site.nodes[0]
    origin.publish("software", SOFTWARE_FULL_KEY, body_for(origin))
    await site.converge()
    assert site.holders(origin.device_id, SOFTWARE_FULL_KEY) == 4
    relayed = site.nodes[3].store.get(origin.device_id, SOFTWARE_FULL_KEY)
    signed = SignedInventory.from_bytes(relayed.body.encode(), "relayed")
    signed.verify(origin.identity.device.public_key_raw)  # the origin's own signature
    assert signed.record.package_count == 3000


@pytest.mark.parametrize("how", ["inner record signed by another key",
                                 "another device's record under its own envelope",
                                 "altered after the device signed it"])
async def test_a_forged_inventory_is_refused_and_its_sender_penalised(site, how):
    rogue, victim, honest = site.nodes[0], site.nodes[1], site.nodes[2]
    if how == "inner record signed by another key":
        body = body_for(rogue, signer=victim.identity.private_key)
    elif how == "another device's record under its own envelope":
        body = body_for(victim)
    else:
        body = body_for(rogue).replace('"kernel":"6.1.0-18-amd64"', '"kernel":"6.1.0-evil"')
        assert "6.1.0-evil" in body
    rogue.publish("software", SOFTWARE_FULL_KEY, body)  # the envelope is genuinely its own
    outcome = await honest.exchange_with(site.addresses[0])
    assert outcome is not None and outcome.refused
    assert honest.store.get(rogue.device_id, SOFTWARE_FULL_KEY) is None
    assert honest.members.is_banned(device_id=rogue.device_id)


async def test_many_large_inventories_spread_in_deltas_within_the_frame_limit(site):
    for index, node in enumerate(site.nodes):
        for sequence in range(1, 4):  # three versions each: only the newest is kept
            node.publish("software", SOFTWARE_FULL_KEY,
                         body_for(node, sequence, rows=package_list(3000, seed=index * 10
                                                                    + sequence)))
    delta_sizes = []
    for node in site.nodes:
        delta = node.store.newer_than({}, 512, budget=100_000)
        delta_sizes.append(sum(len(record.body) for record in delta))
    assert max(delta_sizes) < 100_000 + 60_000  # one record past the budget at most
    await site.converge()
    assert all(site.holders(node.device_id, SOFTWARE_FULL_KEY) == 4 for node in site.nodes)
    assert MAX_DELTA_BODY_CHARS * 2 + 2 * 1024 * 1024 <= 8 * 1024 * 1024
