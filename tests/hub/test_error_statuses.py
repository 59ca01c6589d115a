"""One table maps the hub's errors to HTTP statuses (hub/api/error_statuses.py): what the
request is to blame for is a 4xx, everything else a 500, and an agent keeps a record the
hub failed to take (a 5xx) in its outbox instead of dropping it as refused.

The server fault is a real one: the hub's SQLite file is swapped for a directory, so
every route that opens the database fails as a broken disk would make it fail, over real
HTTP (Hypercorn) with a real enrolled agent."""

import contextlib
import sqlite3
from datetime import UTC, datetime

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.device_identity import DeviceIdentity
from agent.errors import AgentError, ConfigError, SignatureError, WireFormatError
from agent.hub_client import refused_for_good
from agent.wire.heartbeat import Heartbeat, SignedHeartbeat
from agent.wire.lease import LeaseRequest, SignedLeaseRequest
from hub.api.error_statuses import status_of
from hub.errors import (
    BodyTooLargeError,
    CertificateAuthorityError,
    EnrollmentRefusedError,
    HubError,
    KeyMaterialError,
    RepositoryError,
    UnknownDeviceError,
)
from tests.agent.test_gossip_hub import result_of
from tests.agent.test_hostile_hub import put_in_outbox
from tests.fleet import start_agent, start_hub
from tests.hub.test_device_api import enroll_request

STATUSES = {
    "body too large": (BodyTooLargeError("body over 8192 bytes"), 413),
    "unknown device": (UnknownDeviceError("no accepted device 'dev-x'"), 404),
    "bad signature": (SignatureError("signature does not verify"), 403),
    "enrollment refused": (EnrollmentRefusedError("enrollment token is unknown"), 403),
    "malformed body": (WireFormatError("result record: not JSON"), 400),
    "hub's CA key missing": (CertificateAuthorityError("ca.key missing"), 500),
    "hub's signing failed": (RepositoryError("snapshot could not be signed"), 500),
    "hub's key unreadable": (KeyMaterialError("online key unreadable"), 500),
    "any other hub error": (HubError("something on the hub"), 500),
    "agent error not about the request": (ConfigError("a local file"), 500),
    "bare agent error": (AgentError("?"), 500),
    "database locked": (sqlite3.OperationalError("database is locked"), 500),
    "disk full": (OSError(28, "No space left on device"), 500),
    "a bug": (KeyError("field"), 500),
}


@pytest.mark.parametrize(("error", "status"), STATUSES.values(), ids=STATUSES.keys())
def test_only_what_the_request_is_to_blame_for_is_a_4xx(error, status):
    assert status_of(error) == status


@pytest.mark.parametrize(("status", "for_good"), [
    (400, True), (403, True), (404, True), (413, True),
    (408, False), (429, False), (500, False), (502, False), (503, False),
])
def test_the_agent_gives_up_on_a_4xx_only_and_retries_the_rest(status, for_good):
    assert refused_for_good(status) is for_good


@contextlib.contextmanager
def database_unopenable(path):
    """The hub's database file replaced by a directory for the block: sqlite3 cannot
    open it ("unable to open database file"), as with a broken disk or mount."""
    aside = path.with_name(path.name + ".aside")
    path.rename(aside)
    path.mkdir()
    try:
        yield
    finally:
        path.rmdir()
        aside.rename(path)


async def test_every_device_route_answers_500_when_the_hub_database_fails(tmp_path, nursery):
    hub = await start_hub(tmp_path, nursery)
    agent, _ = await start_agent(hub, nursery, "a", "127.0.0.2")
    identity = agent.identity
    now = datetime.now(UTC).isoformat(timespec="seconds")
    newcomer = DeviceIdentity(Ed25519PrivateKey.generate())
    lease = LeaseRequest(action="acquire", device_id=identity.device_id, group="lab",
                         release="releases/app/1.0.0/app.tar", ttl_seconds=60, issued_at=now)
    bodies = {
        "/api/v1/enroll": enroll_request(newcomer, "x" * 43).model_dump_json().encode(),
        "/api/v1/results": result_of(agent, "6a0c8c6e-8a4e-4b38-9d1e-2a9a3f9c0001").to_bytes(),
        "/api/v1/leases": SignedLeaseRequest.sign(lease, identity.private_key).to_bytes(),
        "/api/v1/heartbeat": SignedHeartbeat.sign(
            Heartbeat(device_id=identity.device_id, issued_at=now),
            identity.private_key).to_bytes(),
        "/api/v1/results/missing": b'{"records": []}',
        "/api/v1/results/batch": b'{"results": []}',
    }
    answers = {}
    async with httpx.AsyncClient(base_url=hub.url) as client:
        with database_unopenable(hub.hub_dir.database):
            for path, body in bodies.items():
                answer = await client.post(
                    path, content=body, headers={"content-type": "application/json"})
                answers[path] = (answer.status_code, answer.json()["error"])
        # The hub kept serving: the same results route takes a record once the disk is back.
        again = await client.post("/api/v1/results", content=bodies["/api/v1/results"])
    assert {path: status for path, (status, _) in answers.items()} == dict.fromkeys(bodies, 500)
    assert all("try again later" in text and str(tmp_path) not in text
               for _, text in answers.values()), answers
    assert again.status_code == 201


async def test_a_result_the_hub_failed_to_store_stays_in_the_outbox_and_goes_later(
    tmp_path, nursery
):
    hub = await start_hub(tmp_path, nursery)
    agent, _ = await start_agent(hub, nursery, "a", "127.0.0.2")
    record = result_of(agent, "6a0c8c6e-8a4e-4b38-9d1e-2a9a3f9c0002")
    put_in_outbox(agent, record)
    with database_unopenable(hub.hub_dir.database):
        assert await agent.deliver_results() == 1  # a 500: kept, not refused for good
    assert [record_id for record_id, _ in agent.journal.undelivered()] == [
        record.record.record_id]
    assert await agent.deliver_results() == 0
    assert [row["record_id"] for row in hub.results()] == [record.record.record_id]


async def test_a_forged_result_is_refused_for_good_not_retried(tmp_path, nursery):
    hub = await start_hub(tmp_path, nursery)
    agent, _ = await start_agent(hub, nursery, "a", "127.0.0.2")
    forged = result_of(agent, "6a0c8c6e-8a4e-4b38-9d1e-2a9a3f9c0003",
                       key=Ed25519PrivateKey.generate())
    put_in_outbox(agent, forged)
    assert await agent.deliver_results() == 0  # a 403: dropped, the hub will never take it
    assert hub.results() == []
