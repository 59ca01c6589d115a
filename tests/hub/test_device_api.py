"""Enrollment and results over real HTTP (Hypercorn's trio worker, httpx client)."""

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.device_identity import DeviceIdentity
from agent.wire.enrollment import EnrollRequest
from agent.wire.result import Outcome, ResultRecord, SignedResult
from hub.database import HubDatabase


def enroll_request(identity, token_secret, **changes):
    fields = dict(
        token_secret=token_secret,
        device_id=identity.device_id,
        public_key=base64.b64encode(identity.public_key_raw).decode(),
        name="laptop-1", hostname="laptop-1", group="office", site="berlin",
    )
    fields.update(changes)
    return EnrollRequest(**fields).signed_with(identity.private_key)


def result_for(identity, record_id="6a0c8c6e-8a4e-4b38-9d1e-2a9a3f9c0001"):
    return ResultRecord(
        record_id=record_id, device_id=identity.device_id,
        release="releases/app/1.0/app.tar", name="app", version="1.0",
        outcome=Outcome.INSTALLED, started_at="2026-11-25T00:00:00+00:00",
        finished_at="2026-11-25T00:01:00+00:00",
    )


async def test_device_enrolls_with_valid_token_and_its_results_are_stored_once(api_hub):
    client, token, hub_dir = api_hub
    identity = DeviceIdentity(Ed25519PrivateKey.generate())
    response = await client.post("/api/v1/enroll",
                                 json=enroll_request(identity, token.secret).model_dump())
    assert response.status_code == 200, response.text
    answer = response.json()
    assert {k: answer[k] for k in ("device_id", "status")} == {
        "device_id": identity.device_id, "status": "accepted"}
    assert answer["certificate"].startswith("-----BEGIN CERTIFICATE-----")  # mutual TLS

    body = SignedResult.sign(result_for(identity), identity.private_key).to_bytes()
    first = await client.post("/api/v1/results", content=body)
    again = await client.post("/api/v1/results", content=body)
    assert (first.status_code, again.status_code) == (201, 200)
    database = HubDatabase(hub_dir.database)
    assert len(database.query("SELECT * FROM results")) == 1
    assert database.device(identity.device_id).site == "berlin"
    database.close()


async def test_unknown_token_is_refused(api_hub):
    client, _token, hub_dir = api_hub
    identity = DeviceIdentity(Ed25519PrivateKey.generate())
    response = await client.post("/api/v1/enroll",
                                 json=enroll_request(identity, "x" * 43).model_dump())
    assert response.status_code == 403
    assert "token" in response.json()["error"]


async def test_enrollment_without_proof_of_key_is_refused(api_hub):
    client, token, _ = api_hub
    identity = DeviceIdentity(Ed25519PrivateKey.generate())
    thief = DeviceIdentity(Ed25519PrivateKey.generate())
    request = enroll_request(identity, token.secret).model_dump()
    request["proof"] = enroll_request(thief, token.secret).proof
    response = await client.post("/api/v1/enroll", json=request)
    assert response.status_code == 403
    assert "proof" in response.json()["error"]


async def test_result_with_bad_signature_is_refused_and_not_stored(api_hub):
    client, token, hub_dir = api_hub
    identity = DeviceIdentity(Ed25519PrivateKey.generate())
    await client.post("/api/v1/enroll", json=enroll_request(identity, token.secret).model_dump())
    forged = SignedResult.sign(result_for(identity), Ed25519PrivateKey.generate())
    response = await client.post("/api/v1/results", content=forged.to_bytes())
    assert response.status_code == 403
    assert "does not verify" in response.json()["error"]
    database = HubDatabase(hub_dir.database)
    assert database.query("SELECT * FROM results") == []
    database.close()


async def test_result_from_unknown_device_is_refused(api_hub):
    client, _, _ = api_hub
    identity = DeviceIdentity(Ed25519PrivateKey.generate())
    signed = SignedResult.sign(result_for(identity), identity.private_key)
    response = await client.post("/api/v1/results", content=signed.to_bytes())
    assert response.status_code == 404


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        (b"not json", 400, "not JSON"),
        (b'{"record": {}, "signature": "x"}', 400, "record.record_id"),
        (b"{" + b" " * 100_000 + b"}", 413, "larger than"),
    ],
)
async def test_malformed_result_bodies_get_a_clear_4xx(api_hub, body, status, words):
    client, _, _ = api_hub
    response = await client.post("/api/v1/results", content=body)
    assert response.status_code == status
    assert words in response.json()["error"]
