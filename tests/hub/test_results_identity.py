"""Results are identified by (device, record id) at the hub: a peer that read a victim's
record id from gossip and posted its own record under it first can no longer make the
victim's failure "already stored" (issue 12, attack 4). Real HTTP (Hypercorn), real
SQLite; an old hub database is upgraded in place. Bodies a hostile client sends (deep
nesting, huge numbers) are answered 400, not 500 (attack 3)."""

import json
import sqlite3

import pytest

from agent.device_identity import DeviceIdentity
from agent.wire.result import Outcome, SignedResult
from hub.database import HubDatabase
from tests.hub.test_device_api import enroll_request, result_for

SHARED_ID = "6a0c8c6e-8a4e-4b38-9d1e-2a9a3f9c00ff"


async def enrolled(client, token, tmp_path, name):
    identity = DeviceIdentity.load_or_create(tmp_path / f"{name}.key")
    answer = await client.post("/api/v1/enroll", json=enroll_request(
        identity, token.secret, name=name, hostname=name).model_dump(mode="json"))
    assert answer.json()["status"] == "accepted"
    return identity


def signed(identity, outcome, record_id=SHARED_ID):
    record = result_for(identity, record_id).model_copy(update={"outcome": outcome})
    return SignedResult.sign(record, identity.private_key)


async def test_a_record_posted_first_under_a_victims_record_id_does_not_erase_its_failure(
    api_hub, tmp_path
):
    client, token, hub_dir = api_hub
    victim = await enrolled(client, token, tmp_path, "victim")
    rogue = await enrolled(client, token, tmp_path, "rogue")
    rogues = signed(rogue, Outcome.INSTALLED)
    assert (await client.post("/api/v1/results", content=rogues.to_bytes())).status_code == 201
    # The relay asks which of the victim's results the hub lacks: the victim's is missing.
    key = {"device_id": victim.device_id, "record_id": SHARED_ID}
    missing = await client.post("/api/v1/results/missing", json={"records": [key]})
    assert missing.json()["missing_records"] == [key]

    victims = signed(victim, Outcome.REVERTED)
    answer = await client.post("/api/v1/results/batch",
                               json={"results": [json.loads(victims.to_bytes())]})
    assert answer.json()["held"] == [key] and answer.json()["stored"] == [SHARED_ID]
    direct = await client.post("/api/v1/results", content=victims.to_bytes())
    assert direct.status_code == 200  # now really already stored: its own copy
    database = HubDatabase(hub_dir.database)
    rows = database.query("SELECT device_id, outcome FROM results WHERE record_id = ?",
                          (SHARED_ID,))
    database.close()
    assert sorted((row["device_id"], row["outcome"]) for row in rows) == sorted(
        [(victim.device_id, "reverted"), (rogue.device_id, "installed")])


OLD_RESULTS = """
CREATE TABLE results (
    record_id TEXT PRIMARY KEY, device_id TEXT NOT NULL, release TEXT NOT NULL,
    outcome TEXT NOT NULL, reason TEXT NOT NULL, started_at TEXT NOT NULL,
    finished_at TEXT NOT NULL, received_at TEXT NOT NULL, body BLOB NOT NULL
);
CREATE INDEX results_by_release ON results (release, device_id);
"""


def test_a_hub_database_keyed_by_record_id_alone_is_upgraded_keeping_rows_and_rowids(tmp_path):
    path = tmp_path / "hub.db"
    HubDatabase.create(path).close()
    old = sqlite3.connect(path)
    old.executescript("DROP TABLE results;" + OLD_RESULTS)
    for rowid in (3, 7):
        old.execute("INSERT INTO results (rowid, record_id, device_id, release, outcome, "
                    "reason, started_at, finished_at, received_at, body) "
                    "VALUES (?, ?, 'dev-a', 'releases/a', 'reverted', '', 's', 'f', 'r', x'00')",
                    (rowid, f"0000000{rowid}"))
    old.commit()
    old.close()

    database = HubDatabase(path)
    rows = database.query("SELECT rowid, record_id, device_id, outcome FROM results")
    assert [tuple(row) for row in rows] == [(3, "00000003", "dev-a", "reverted"),
                                            (7, "00000007", "dev-a", "reverted")]
    with database.transaction() as db:  # another device, same record id: a second row
        db.execute("INSERT INTO results (record_id, device_id, release, outcome, reason, "
                   "started_at, finished_at, received_at, body) VALUES "
                   "('00000003', 'dev-b', 'releases/a', 'installed', '', 's', 'f', 'r', x'')")
    assert database.query("SELECT count(*) FROM results")[0][0] == 3
    database.close()
    HubDatabase(path).close()  # opening again changes nothing
    indexes = sqlite3.connect(path).execute("PRAGMA index_list(results)").fetchall()
    assert "results_by_release" in {row[1] for row in indexes}


HOSTILE_BODIES = {
    "deep nesting": b"[" * 3_000 + b"]" * 3_000,  # past the recursion limit, within 8 KiB
    "5000-digit integer": b'{"record": {"bytes_from_hub": ' + b"9" * 5000 + b"}}",
    "NaN": b'{"record": NaN}',
}


@pytest.mark.parametrize("body", HOSTILE_BODIES.values(), ids=HOSTILE_BODIES.keys())
@pytest.mark.parametrize("path", ["/api/v1/results", "/api/v1/enroll", "/api/v1/leases",
                                  "/api/v1/results/missing", "/api/v1/results/batch"])
async def test_hostile_bodies_are_answered_400_not_500(api_hub, path, body):
    client, _token, _hub_dir = api_hub
    answer = await client.post(path, content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 400, answer.text
    assert "JSON" in answer.json()["error"]
