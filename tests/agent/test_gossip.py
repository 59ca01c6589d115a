"""Site gossip between real nodes on loopback: real mutual TLS with certificates from the
hub's device CA code, real SQLite stores, real Ed25519 signatures. Only the daemons
around the nodes are left out (tests drive the rounds)."""

import hashlib
import json
from urllib import parse

import pytest
import trio

from agent.gossip.relay_files import TrustedFiles
from agent.gossip.site_members import SiteMembers
from agent.wire.gossip import GossipRecord, Inventory
from agent.wire.result import Outcome
from hub.devices.certificate_authority import DeviceCertificateAuthority
from tests.agent._gossip_site import SimulatedSite, make_node, signed_result

RECORD_ID = "6a0c8c6e-8a4e-4b38-9d1e-2a9a3f9c0001"


@pytest.fixture
async def site(tmp_path, nursery):
    built = SimulatedSite.build(tmp_path, 8)
    await built.start(nursery)
    await built.converge()
    yield built
    built.close()


async def test_a_result_reaches_all_8_agents_of_a_site_in_a_few_rounds(site):
    rounds, sent = await site.spread(0, RECORD_ID)
    assert rounds <= 6  # push-pull: about log3(8) + a little; 8 rounds would be a bug
    # Per exchange: a TLS 1.3 handshake with two certificates, a digest of 8 origins, and
    # the one record at most: a few KiB, not the site's whole state.
    assert sent / (rounds * len(site.nodes)) < 8 * 1024
    origin = site.nodes[0].device_id
    for node in site.nodes:
        record = node.store.get(origin, RECORD_ID)
        assert record is not None and json.loads(record.body)["record"]["outcome"] == "installed"


async def test_a_peer_without_a_hub_issued_certificate_is_refused_the_handshake(
    site, tmp_path, nursery
):
    other_hub = DeviceCertificateAuthority.load_or_create(tmp_path / "another-hub")
    stranger = make_node(tmp_path / "stranger", other_hub, "branch")
    stranger.publish("result", RECORD_ID,
                     signed_result(stranger, RECORD_ID).to_bytes().decode())
    honest = site.nodes[1]
    digest_before = honest.store.digest()

    assert await stranger.exchange_with(site.addresses[1]) is None  # it dials us
    stranger_address = await nursery.start(stranger.serve, "127.0.0.1", 0)
    assert await honest.exchange_with(stranger_address) is None  # we dial it
    with pytest.raises(trio.BrokenResourceError):
        await honest.fetch_file(stranger_address, "metadata/timestamp.json")
    assert honest.store.digest() == digest_before
    assert stranger.store.digest().keys() == {stranger.device_id}


async def test_forged_result_records_are_dropped_not_forwarded_and_the_peer_penalised(site):
    hostile, victim, honest, downstream = site.nodes[2], site.nodes[3], site.nodes[4], site.nodes[5]
    certificate_of = hostile.store.certificate
    # 1. A result "of the victim", signed with the hostile device's own key.
    forged = GossipRecord.sign(
        victim.device_id, 99, "result", "f0e1-0001",
        signed_result(hostile, "f0e1-0001", Outcome.INSTALLED, device_id=victim.device_id)
        .to_bytes().decode(), hostile.identity.private_key)
    hostile.store.put(forged, certificate_of(victim.device_id))
    # 2. Under its own name, a result record claiming to be the victim's.
    hostile.publish("result", "f0e1-0002", signed_result(
        hostile, "f0e1-0002", device_id=victim.device_id).to_bytes().decode())
    # 3. Under its own name, its own result altered after it was signed.
    altered = json.loads(signed_result(hostile, "f0e1-0003", Outcome.FAILED).to_bytes())
    altered["record"]["outcome"] = "installed"
    hostile.publish("result", "f0e1-0003", json.dumps(altered))

    outcome = await honest.exchange_with(site.addresses[2])
    assert outcome is not None and len(outcome.refused) == 2  # victim's part, hostile's part
    for origin, key in ((victim.device_id, "f0e1-0001"), (hostile.device_id, "f0e1-0002"),
                        (hostile.device_id, "f0e1-0003")):
        assert honest.store.get(origin, key) is None
    assert honest.members.is_banned(site.addresses[2])
    assert await honest.exchange_with(site.addresses[2]) is None  # left alone now

    await downstream.exchange_with(site.addresses[4])  # nothing forged to pass on
    assert not {"f0e1-0001", "f0e1-0002", "f0e1-0003"} & {
        r.key for r in downstream.store.records("result")}


async def test_a_record_altered_in_transit_by_a_relay_is_refused(site):
    relay, origin, receiver = site.nodes[1], site.nodes[6], site.nodes[7]
    origin.publish("result", RECORD_ID, signed_result(origin, RECORD_ID).to_bytes().decode())
    await relay.exchange_with(site.addresses[6])
    genuine = relay.store.get(origin.device_id, RECORD_ID)
    renumbered = genuine.model_copy(update={"version": genuine.version + 1000})
    relay.store.put(renumbered, relay.store.certificate(origin.device_id))
    outcome = await receiver.exchange_with(site.addresses[1])
    assert outcome is not None and outcome.refused
    assert receiver.store.digest().get(origin.device_id, 0) < 1000


def test_trusted_files_serve_only_what_ngclient_persisted_and_only_inside_their_dirs(tmp_path):
    metadata, targets = tmp_path / "metadata", tmp_path / "targets"
    (metadata / "root_history").mkdir(parents=True)
    targets.mkdir()
    (metadata / "timestamp.json").write_text('{"signed": {"version": 7}}')
    (metadata / "snapshot.json").write_text('{"signed": {"version": 3}}')
    (metadata / "root_history" / "1.root.json").write_text("root 1")
    (tmp_path / "secret").write_text("device key")
    document = b'{"rollouts": []}'
    (targets / parse.quote("rollouts/lab.json", "")).write_bytes(document)
    digest = hashlib.sha256(document).hexdigest()
    files = TrustedFiles(metadata, targets)

    assert files.read("metadata/timestamp.json") == b'{"signed": {"version": 7}}'
    assert files.read("metadata/3.snapshot.json") is not None
    assert files.read("metadata/2.snapshot.json") is None  # not the version we hold
    assert files.read("metadata/1.root.json") == b"root 1"
    assert files.read("metadata/2.root.json") is None  # "no newer root"
    assert files.read(f"targets/rollouts/{digest}.lab.json") == document
    assert files.read(f"targets/rollouts/{'0' * 64}.lab.json") is None
    for sneaky in ("metadata/../secret", "metadata/1.%2e%2e%2fsecret.json",
                   "targets/../secret", f"targets/../{digest}.secret", "metadata/root.json"):
        assert files.read(sneaky) is None, sneaky


async def test_a_penalised_peer_is_left_alone_for_a_while_and_longer_each_time(mock_clock):
    members = SiteMembers("dev-" + "0" * 20, "branch", ["127.0.0.9:7881"])
    members.bind("127.0.0.9:7881", "dev-" + "1" * 20)  # it answered there
    members.penalise("dev-" + "1" * 20, "forged record")
    assert members.usable() == [] and members.is_banned(device_id="dev-" + "1" * 20)
    mock_clock.jump(301)
    assert [m.address for m in members.usable()] == ["127.0.0.9:7881"]
    members.penalise("dev-" + "1" * 20, "again")
    mock_clock.jump(599)
    assert members.usable() == []  # the second strike bans for twice as long
    mock_clock.jump(2)
    assert len(members.usable()) == 1


async def test_members_are_learned_only_from_inventories_of_our_own_site():
    members = SiteMembers("dev-" + "0" * 20, "berlin")
    members.learn("dev-" + "1" * 20, Inventory(site="berlin", gossip="127.0.0.5:7881",
                                               p2p="127.0.0.5:6881", timestamp_version=4))
    members.learn("dev-" + "2" * 20, Inventory(site="paris", gossip="127.0.0.6:7881"))
    assert members.metadata_sources() == ["127.0.0.5:7881"]
    assert members.p2p_endpoints() == [("127.0.0.5", 6881)]
