"""The hub's inventory API over real HTTP (Hypercorn, httpx) and its store: full records
and diffs, a base the hub lacks (409), a diff that does not give its digest (422), forged
and tampered records (403), bounds (400, 413), stale records, and what the store
answers (`hub.inventory.store`)."""

from __future__ import annotations

import base64
import json
import zlib

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.device_identity import DeviceIdentity
from agent.inventory.records import build_record
from agent.wire.inventory import MAX_INVENTORY_BYTES, SignedInventory, pack, pack_rows
from hub.database import HubDatabase
from hub.inventory import store
from tests.hub.test_device_api import enroll_request
from tests.inventory_packages import package_list, snapshot, upgraded

AT = "2026-12-02T10:00:00+00:00"


async def enrolled(client, token) -> DeviceIdentity:
    identity = DeviceIdentity(Ed25519PrivateKey.generate())
    response = await client.post("/api/v1/enroll",
                                 json=enroll_request(identity, token.secret).model_dump())
    assert response.status_code == 200, response.text
    return identity


def signed(identity, snap, sequence, base=None, key=None):
    record = build_record(snap, identity.device_id, sequence, AT, base)
    return record, SignedInventory.sign(record, key or identity.private_key)


async def post(client, signed_record) -> tuple[int, dict]:
    response = await client.post("/api/v1/inventory", content=signed_record.to_bytes())
    return response.status_code, response.json()


def opened(hub_dir) -> HubDatabase:
    return HubDatabase(hub_dir.database)


async def test_a_full_record_then_a_diff_give_the_latest_packages_and_history(api_hub):
    client, token, hub_dir = api_hub
    identity = await enrolled(client, token)
    first = snapshot()
    full, signed_full = signed(identity, first, 1)
    assert await post(client, signed_full) == (201, {"stored": True, "sequence": 1})
    assert await post(client, signed_full) == (200, {"stored": False, "sequence": 1})

    second = snapshot(upgraded(first.packages, 12))
    diff, signed_diff = signed(identity, second, 2, base=full)
    assert diff.kind == "diff"
    assert (await post(client, signed_diff))[0] == 201

    database = opened(hub_dir)
    try:
        latest = store.latest(database, identity.device_id)
        assert latest is not None and latest.sequence == 2
        assert sorted((p.name, p.version, p.architecture, p.source, p.source_version)
                      for p in latest.software.packages) == sorted(second.packages)
        assert latest.software.os.codename == "bookworm"
        assert latest.hardware.memory_bytes == 8 << 30
        software = store.latest_software(database)
        assert list(software) == [identity.device_id]
        assert len(software[identity.device_id].packages) == 3000
        changes = store.history(database, identity.device_id)
        assert [c.sequence for c in changes] == [2, 1]
        assert changes[1].first and changes[1].package_count == 3000
        moved = {(c.name, c.old_version == "", c.new_version == "") for c in changes[0].packages}
        assert len(changes[0].packages) == 14  # 12 upgraded, one removed, one added
        assert ("newly-installed-tool", True, False) in moved
    finally:
        database.close()


async def test_a_diff_whose_base_the_hub_lacks_is_409_and_the_full_record_then_taken(api_hub):
    client, token, hub_dir = api_hub
    identity = await enrolled(client, token)
    full, signed_full = signed(identity, snapshot(), 1)  # never sent: the hub lacks it
    _diff, signed_diff = signed(identity, snapshot(upgraded(full.full_rows("t"), 3)), 2, full)
    status, answer = await post(client, signed_diff)
    assert status == 409 and "send a full record" in answer["error"]
    assert (await post(client, signed_full))[0] == 201
    assert (await post(client, signed_diff))[0] == 201


async def test_a_diff_that_does_not_give_its_digest_is_422_and_nothing_stored(api_hub):
    client, token, hub_dir = api_hub
    identity = await enrolled(client, token)
    full, signed_full = signed(identity, snapshot(), 1)
    assert (await post(client, signed_full))[0] == 201
    diff = build_record(snapshot(upgraded(full.full_rows("t"), 3)), identity.device_id, 2,
                        AT, full)
    lying = diff.model_copy(update={"changes": pack({"changed": pack_rows(
        [("openssl", "3.0.11-1~deb12u2", "amd64", "openssl", "3.0.11-1~deb12u2")]),
        "removed": []})})
    status, answer = await post(client, SignedInventory.sign(lying, identity.private_key))
    assert status == 422 and "digest" in answer["error"]
    database = opened(hub_dir)
    try:
        assert store.latest(database, identity.device_id).sequence == 1
    finally:
        database.close()


async def test_forged_and_tampered_records_are_refused_with_403(api_hub):
    client, token, _hub_dir = api_hub
    identity = await enrolled(client, token)
    _record, forged = signed(identity, snapshot(), 1, key=Ed25519PrivateKey.generate())
    assert (await post(client, forged))[0] == 403
    _record, genuine = signed(identity, snapshot(), 1)
    tampered = genuine.model_copy(update={"record": genuine.record.model_copy(
        update={"kernel": "6.1.0-evil"})})
    status, answer = await post(client, tampered)
    assert status == 403 and "signature does not verify" in answer["error"]
    other = DeviceIdentity(Ed25519PrivateKey.generate())  # never enrolled
    assert (await post(client, signed(other, snapshot(), 1)[1]))[0] == 404


async def test_bounds_malformed_rows_oversized_bodies_and_zip_bombs_are_4xx(api_hub):
    client, token, _hub_dir = api_hub
    identity = await enrolled(client, token)
    full = build_record(snapshot(package_list(10)), identity.device_id, 1, AT, None)

    async def status_of(record) -> tuple[int, str]:
        status, answer = await post(client, SignedInventory.sign(record, identity.private_key))
        return status, answer.get("error", "")

    bad_row = full.model_copy(update={"packages": pack([["Bad Name", "1", "amd64", "", ""]])})
    assert (await status_of(bad_row))[0] == 400
    twice = pack_rows(full.full_rows("t"))
    assert "listed twice" in (await status_of(
        full.model_copy(update={"packages": pack(twice + twice[:1])})))[1]
    bomb = base64.b64encode(zlib.compress(b"[" + b" " * (64 << 20) + b"]", 9)).decode()
    status, error = await status_of(full.model_copy(update={"packages": bomb}))
    assert status == 400 and "expands past" in error
    huge = await client.post("/api/v1/inventory", content=b" " * (MAX_INVENTORY_BYTES + 1))
    assert huge.status_code == 413
    assert (await client.post("/api/v1/inventory", content=b"{}")).status_code == 400
    mixed = json.loads(SignedInventory.sign(full, identity.private_key).to_bytes())
    mixed["record"]["base_digest"] = "0" * 64  # a full record naming a base
    assert (await client.post("/api/v1/inventory", content=json.dumps(mixed))).status_code == 400
    # The hub still answers.
    assert (await client.get("/api/v1/health")).status_code == 200


async def test_relays_learn_which_records_the_hub_lacks(api_hub):
    client, token, _hub_dir = api_hub
    identity = await enrolled(client, token)
    _record, signed_full = signed(identity, snapshot(), 5)
    assert (await post(client, signed_full))[0] == 201
    asked = {"records": [{"device_id": identity.device_id, "sequence": n} for n in (4, 5, 6)]
             + [{"device_id": "dev-00000000000000000000", "sequence": 1}]}
    answer = (await client.post("/api/v1/inventory/missing", json=asked)).json()
    assert answer["missing"] == [{"device_id": identity.device_id, "sequence": 6},
                                 {"device_id": "dev-00000000000000000000", "sequence": 1}]


async def test_a_devices_history_is_bounded_to_its_newest_changes(api_hub, monkeypatch):
    from hub.inventory import ingest

    monkeypatch.setattr(ingest, "HISTORY_KEPT", 3)
    client, token, hub_dir = api_hub
    identity = await enrolled(client, token)
    rows = package_list(20)
    base, signed_full = signed(identity, snapshot(rows), 1)
    assert (await post(client, signed_full))[0] == 201
    for sequence in range(2, 8):
        rows = upgraded(rows, 1, seed=sequence)
        assert (await post(client, signed(identity, snapshot(rows), sequence, base)[1]))[0] == 201
    database = opened(hub_dir)
    try:
        assert [c.sequence for c in store.history(database, identity.device_id)] == [7, 6, 5]
        assert store.latest(database, identity.device_id).package_count == len(rows)
    finally:
        database.close()
