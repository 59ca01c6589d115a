"""What a certified site peer can try against gossip, now that the attacker may hold the
hub's device CA (issue 12): hostile frames, a victim's address claimed and burnt, a
real record relayed with a certificate minted to expire. Real nodes on loopback, real
mutual TLS with certificates from the hub's CA code, real SQLite stores; the rogue is a
node whose behaviour the test scripts."""

import datetime as dt
import json

import pytest
import trio
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from agent.errors import CertificateRefusedError
from agent.gossip.node import GossipNode, NodeIdentity
from agent.gossip.tls import SiteCredentials
from agent.wire.gossip import INVENTORY_KEY, Inventory
from agent.wire.result import Outcome
from hub.devices.certificate_authority import (
    DEVICE_CERTIFICATE_LIFETIME,
    DeviceCertificateAuthority,
)
from tests.agent._gossip_site import SimulatedSite, make_node, signed_result

DEEP = b"[" * 200_000 + b"]" * 200_000
HUGE_INT = b'{"type": "digest", "digest": {"dev-00000000000000000000": ' + b"7" * 5000 + b"}}"
HOSTILE_FRAMES = [DEEP, HUGE_INT, b'{"type": "digest", "digest": {"a": NaN}}',
                  b'{"type": "delta", "records": [' + b"{" * 5000 + b"]}"]


@pytest.fixture
async def site(tmp_path, nursery):
    built = SimulatedSite.build(tmp_path, 5)
    await built.start(nursery)
    await built.converge()
    yield built
    built.close()


async def send_raw(rogue: GossipNode, address: str, frame: bytes) -> bytes | None:
    """The rogue dials `address` and sends `frame` as its first message; the answer
    frame, or None if the connection was closed."""
    async with rogue._dial(address) as (framed, _peer):
        await framed.send_frame(frame)
        try:
            return await framed.receive_frame()
        except (trio.BrokenResourceError, OSError, Exception):
            return None


@pytest.mark.parametrize("frame", HOSTILE_FRAMES, ids=["deep", "huge-int", "nan", "deep-dict"])
async def test_a_hostile_frame_ends_only_that_conversation_and_the_node_serves_on(site, frame):
    rogue, honest = site.nodes[0], site.nodes[1]
    await send_raw(rogue, site.addresses[1], frame)
    # Still serving, and the others still reconcile with it.
    site.nodes[2].publish("result", "a1b2c3d4-0001",
                          signed_result(site.nodes[2], "a1b2c3d4-0001").to_bytes().decode())
    assert (await honest.exchange_with(site.addresses[2])).accepted == 1
    assert await site.nodes[3].exchange_with(site.addresses[1]) is not None
    assert honest.members.is_banned(device_id=rogue.device_id)  # a protocol fault


@pytest.mark.parametrize("frame", HOSTILE_FRAMES, ids=["deep", "huge-int", "nan", "deep-dict"])
async def test_a_hostile_answer_ends_only_that_exchange(site, frame, monkeypatch):
    rogue, honest = site.nodes[0], site.nodes[1]

    async def answer_with_frame(framed, peer_device):
        await framed.receive_frame()
        await framed.send_frame(frame)

    monkeypatch.setattr(rogue, "_answer", answer_with_frame)
    assert await honest.exchange_with(site.addresses[0]) is None
    assert honest.members.is_banned(site.addresses[0])
    assert await honest.exchange_with(site.addresses[2]) is not None


async def test_a_rogue_claiming_a_victims_address_and_misbehaving_does_not_get_it_banned(site):
    # Order so that the rogue's inventory is taken after the victim's (by origin id), as
    # it was when the claim overwrote who the address belonged to.
    first, second = sorted(site.nodes[:2], key=lambda node: node.device_id)
    victim, rogue, honest = first, second, site.nodes[2]
    victim_address = victim.members.own_address
    rogue.publish("inventory", INVENTORY_KEY, Inventory(
        site=rogue.members.site, gossip=victim_address).model_dump_json())
    assert (await honest.exchange_with(rogue.members.own_address)).accepted == 1
    # The rogue now misbehaves: it dials the honest node with a forged record.
    altered = json.loads(signed_result(rogue, "b0b0b0b0-0001", Outcome.FAILED).to_bytes())
    altered["record"]["outcome"] = "installed"
    rogue.publish("result", "b0b0b0b0-0001", json.dumps(altered))
    await rogue.exchange_with(site.addresses[2])
    assert honest.members.is_banned(device_id=rogue.device_id)

    assert victim_address in [member.address for member in honest.members.usable()]
    victim.publish("result", "b0b0b0b0-0002",
                   signed_result(victim, "b0b0b0b0-0002").to_bytes().decode())
    assert (await honest.exchange_with(victim_address)).accepted == 1


def mint_short_lived(authority: DeviceCertificateAuthority, node: GossipNode,
                     seconds: float) -> bytes:
    """What a holder of the device CA can do: a real certificate for the victim's real
    key, valid `seconds` more."""
    raw = node.identity.device.public_key_raw
    now = dt.datetime.now(dt.UTC) - DEVICE_CERTIFICATE_LIFETIME + dt.timedelta(seconds=seconds)
    pem = authority.issue(raw, node.members.site, now=now)
    return x509.load_pem_x509_certificate(pem.encode()).public_bytes(serialization.Encoding.DER)


async def relay_with_short_certificate(site, victim, rogue, record_id):
    victim.publish("result", record_id, signed_result(victim, record_id).to_bytes().decode())
    await rogue.exchange_with(victim.members.own_address)
    short = mint_short_lived(site.authority, victim, seconds=2)
    rogue.store.put(rogue.store.get(victim.device_id, record_id), short)
    return short


async def test_a_stored_certificate_is_not_replaced_by_a_short_lived_one(site):
    victim, rogue, relay, downstream = site.nodes[:4]
    real = relay.store.certificate(victim.device_id)
    short = await relay_with_short_certificate(site, victim, rogue, "c0c0c0c0-0001")
    assert (await relay.exchange_with(rogue.members.own_address)).accepted == 1
    assert relay.store.certificate(victim.device_id) == real != short
    await trio.sleep(2.5)  # the minted certificate expires

    outcome = await downstream.exchange_with(relay.members.own_address)
    assert outcome is not None and not outcome.refused and not outcome.unverifiable
    assert downstream.store.get(victim.device_id, "c0c0c0c0-0001") is not None
    assert not downstream.members.is_banned(relay.members.own_address)


async def test_a_relay_is_not_penalised_for_an_origins_certificate(site, tmp_path, nursery):
    victim, rogue = site.nodes[:2]
    await relay_with_short_certificate(site, victim, rogue, "c0c0c0c0-0002")
    # A relay that never met the victim takes the record with the only certificate
    # it was offered (valid then), and a third node asks it after that expired.
    relay = make_node(tmp_path / "fresh-relay", site.authority)
    downstream = make_node(tmp_path / "fresh-downstream", site.authority)
    relay_address = await nursery.start(relay.serve, "127.0.0.1", 0)
    relay.members.add(rogue.members.own_address)
    downstream.members.add(relay_address)
    assert (await relay.exchange_with(rogue.members.own_address)).accepted >= 1
    await trio.sleep(2.5)

    outcome = await downstream.exchange_with(relay_address)
    assert outcome is not None and not outcome.refused
    assert any(victim.device_id in line for line in outcome.unverifiable)
    assert not downstream.members.is_banned(relay_address)
    assert downstream.store.get(victim.device_id, "c0c0c0c0-0002") is None
    with pytest.raises(CertificateRefusedError):
        downstream.certificates.verify(relay.store.certificate(victim.device_id))


async def test_a_devices_own_records_are_checked_with_the_certificate_it_presents_in_tls(
    site, tmp_path
):
    rogue = site.nodes[1]
    real = rogue.identity.certificate_der
    rogue.publish("result", "d0d0d0d0-0001",
                  signed_result(rogue, "d0d0d0d0-0001").to_bytes().decode())
    expired = mint_short_lived(site.authority, rogue, seconds=-60)
    rogue.store.put(rogue.store.get(rogue.device_id, "d0d0d0d0-0001"), expired)
    newcomer = make_node(tmp_path / "newcomer", site.authority)
    newcomer.members.add(site.addresses[1])
    outcome = await newcomer.exchange_with(site.addresses[1])
    assert outcome is not None and not outcome.refused and not outcome.unverifiable
    assert newcomer.store.certificate(rogue.device_id) == real != expired


async def test_certificates_minted_without_end_do_not_grow_the_verified_cache(
    site, monkeypatch
):
    monkeypatch.setattr("agent.gossip.tls.MAX_CACHED_CERTIFICATES", 8)
    certificates = site.nodes[0].certificates
    for _ in range(20):
        certificates.verify(mint_short_lived(site.authority, site.nodes[1], seconds=600))
    assert len(certificates._verified) <= 8


async def test_a_certificate_its_own_device_presents_in_tls_replaces_the_stored_one(
    site, tmp_path
):
    """A renewed (here: shorter-lived) certificate is taken from the device itself: it
    proved in the handshake that it holds the key, which a minted one cannot."""
    victim, honest = site.nodes[0], site.nodes[1]
    renewed = mint_short_lived(site.authority, victim, seconds=3600)
    directory = tmp_path / "agent-0"
    (directory / "device.crt").write_bytes(
        x509.load_der_x509_certificate(renewed).public_bytes(serialization.Encoding.PEM))
    credentials = SiteCredentials(directory / "device.crt", directory / "device.key",
                                  directory / "hub-ca.crt")
    device, _ca, der = credentials.load()
    renewed_victim = GossipNode(
        NodeIdentity(device, victim.identity.private_key, der), victim.certificates,
        credentials.server_context(), credentials.client_context(), victim.store,
        victim.members)
    renewed_victim.publish("result", "e0e0e0e0-0001",
                           signed_result(victim, "e0e0e0e0-0001").to_bytes().decode())
    outcome = await renewed_victim.exchange_with(honest.members.own_address)
    assert outcome is not None
    assert honest.store.get(victim.device_id, "e0e0e0e0-0001") is not None
    assert honest.store.certificate(victim.device_id) == renewed
