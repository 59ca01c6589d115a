"""The audit log is a signed hash chain whose head is anchored in the timestamp and in
device-signed heartbeats (hub/audit/): a clean log verifies, and each way of tampering
with it — edit, remove, reorder, insert, truncate, re-sign with a foreign key, rewrite
the whole chain with the hub's own key — is caught and named. Real SQLite, a real hub
directory made by `meisitong-hub init`, real TUF metadata.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from securesystemslib.signer import CryptoSigner, SSlibKey
from tuf.api.metadata import Metadata

from agent.wire.audit_head import TIMESTAMP_FIELD, AuditHead
from agent.wire.canonical import canonical_json
from agent.wire.device_signature import sign_detached
from agent.wire.heartbeat import Heartbeat, SignedHeartbeat
from hub.audit.anchor import anchor_head
from hub.audit.chain import entry_signer
from hub.audit.entry import CHAIN_START_ACTION, GENESIS_PREV, entry_hash
from hub.audit.export import export_chain, export_witnesses, served_roots
from hub.audit.verify import verify_chain
from hub.audit.witnesses import Witness, record
from hub.cli.main import main
from hub.database import HubDatabase
from hub.hub_dir import HubDir
from hub.repository.signing_keys import KeyStore


def write_entries(hub: Path, count: int, actor: str = "admin:test") -> None:
    database = HubDatabase(hub / "hub.db")
    try:
        for number in range(count):
            with database.transaction() as db:
                database.audit(db, actor, "test.step", f"subject-{number}", n=number)
    finally:
        database.close()


def verify(hub: Path, witnesses: list[dict] | None = None):
    database = HubDatabase(hub / "hub.db")
    try:
        entries = export_chain(database)
        if witnesses is None:
            witnesses = export_witnesses(database)
    finally:
        database.close()
    directory = HubDir(hub)
    return verify_chain(entries, served_roots(directory),
                        (directory.metadata / "timestamp.json").read_bytes(), witnesses)


def raw(hub: Path) -> sqlite3.Connection:
    return sqlite3.connect(hub / "hub.db", isolation_level=None)


def chain_row(db: sqlite3.Connection, seq: int) -> tuple:
    return db.execute("SELECT seq, audit_id, prev, hash, key_id, signature FROM audit_chain "
                      "WHERE seq = ?", (seq,)).fetchone()


def rewrite_from(db: sqlite3.Connection, first: int, signer: CryptoSigner) -> None:
    """Recompute hash and prev of entries `first`.. and sign them with `signer`: what a
    forger does after editing entry `first`."""
    prev = db.execute("SELECT hash FROM audit_chain WHERE seq = ?", (first - 1,)).fetchone()
    prev = prev[0] if prev else GENESIS_PREV
    rows = db.execute(
        "SELECT c.seq, a.at, a.actor, a.action, a.subject, a.detail FROM audit_chain c "
        "JOIN audit a ON a.id = c.audit_id WHERE c.seq >= ? ORDER BY c.seq", (first,)).fetchall()
    for seq, at, actor, action, subject, detail in rows:
        digest = entry_hash(seq, at, actor, action, subject, json.loads(detail), prev)
        db.execute("UPDATE audit_chain SET prev = ?, hash = ?, key_id = ?, signature = ? "
                   "WHERE seq = ?", (prev, digest, signer.public_key.keyid,
                                     signer.sign(bytes.fromhex(digest)).signature, seq))
        prev = digest


def foreign_signer() -> CryptoSigner:
    key = Ed25519PrivateKey.generate()
    return CryptoSigner(key, SSlibKey.from_crypto(key.public_key()))


def device_witness(hub: Path, head: AuditHead, device_id: str = "dev-1234") -> dict:
    """A device-signed heartbeat naming `head`, as export_witnesses gives it."""
    key = Ed25519PrivateKey.generate()
    heartbeat = Heartbeat(device_id=device_id,
                          issued_at=datetime.now(UTC).isoformat(timespec="seconds"),
                          audit_head=head)
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return {"device_id": device_id, "public_key": public.hex(),
            "heartbeat": SignedHeartbeat.sign(heartbeat, key).to_bytes().decode()}


@pytest.fixture
def hub(initialized_hub_dir) -> Path:
    """A hub with 10 entries beyond what init audits (12 in all), head anchored."""
    write_entries(initialized_hub_dir, 10)
    anchor_head(HubDir(initialized_hub_dir))
    return initialized_hub_dir


def kinds(report) -> list[tuple[int | None, str]]:
    return [(p.seq, p.kind) for p in report.problems]


def test_a_clean_chain_verifies_every_signature_from_the_root_and_the_anchor(hub):
    report = verify(hub)
    assert report.ok, report.problems
    assert report.entries == 12 and report.head["seq"] == 12
    assert report.timestamp_anchor["seq"] == 12 and report.anchored_through == 12
    timestamp = Metadata.from_bytes((HubDir(hub).metadata / "timestamp.json").read_bytes())
    assert timestamp.signed.unrecognized_fields[TIMESTAMP_FIELD] == report.head
    database = HubDatabase(hub / "hub.db")
    try:
        exported = export_chain(database)
    finally:
        database.close()
    root = Metadata.from_bytes(served_roots(HubDir(hub))[0])
    assert {e["key_id"] for e in exported} == set(root.signed.roles["timestamp"].keyids)


def test_anchoring_again_without_new_entries_does_not_resign_the_timestamp(hub):
    path = HubDir(hub).metadata / "timestamp.json"
    before = path.read_bytes()
    anchor_head(HubDir(hub))
    assert path.read_bytes() == before
    write_entries(hub, 1)
    anchor_head(HubDir(hub))
    assert Metadata.from_bytes(path.read_bytes()).signed.version == \
        Metadata.from_bytes(before).signed.version + 1


def test_an_edited_entry_is_named(hub):
    with raw(hub) as db:
        db.execute("UPDATE audit SET detail = '{\"n\": 99}' WHERE id = ?",
                   (chain_row(db, 5)[1],))
    report = verify(hub)
    assert not report.ok and report.first_bad_seq == 5
    assert kinds(report) == [(5, "edited")]


def test_a_removed_entry_is_named(hub):
    with raw(hub) as db:
        audit_id = chain_row(db, 6)[1]
        db.execute("DELETE FROM audit_chain WHERE seq = 6")
        db.execute("DELETE FROM audit WHERE id = ?", (audit_id,))
    report = verify(hub)
    assert report.first_bad_seq == 6 and kinds(report)[0] == (6, "removed")


def test_removing_only_an_entrys_text_is_caught(hub):
    with raw(hub) as db:
        db.execute("DELETE FROM audit WHERE id = ?", (chain_row(db, 4)[1],))
    assert kinds(verify(hub)) == [(4, "edited")]


def test_reordered_entries_are_named(hub):
    with raw(hub) as db:  # entries 7 and 8 swap places, each with its own hash and signature
        db.execute("UPDATE audit_chain SET seq = -1 WHERE seq = 7")
        db.execute("UPDATE audit_chain SET seq = 7 WHERE seq = 8")
        db.execute("UPDATE audit_chain SET seq = 8 WHERE seq = -1")
    report = verify(hub)
    assert report.first_bad_seq == 7
    assert {kind for seq, kind in kinds(report) if seq == 7} == {"unlinked", "edited"}


def test_an_entry_inserted_into_the_chain_is_named(hub):
    with raw(hub) as db:  # a well-formed entry 4 pushed in, the later ones renumbered
        db.execute("UPDATE audit_chain SET seq = seq + 1000 WHERE seq >= 4")
        db.execute("UPDATE audit_chain SET seq = seq - 999 WHERE seq >= 1000")
        audit_id = db.execute(
            "INSERT INTO audit (at, actor, action, subject, detail) VALUES "
            "('2026-01-01T00:00:00+00:00', 'admin:eve', 'rollout.start', 'x', '{}')").lastrowid
        prev = chain_row(db, 3)[3]
        digest = entry_hash(4, "2026-01-01T00:00:00+00:00", "admin:eve", "rollout.start",
                            "x", {}, prev)
        db.execute("INSERT INTO audit_chain VALUES (4, ?, ?, ?, '', '')",
                   (audit_id, prev, digest))
    report = verify(hub)
    assert report.first_bad_seq == 4
    assert (4, "unsigned") in kinds(report) and (5, "edited") in kinds(report)


def test_a_row_written_past_the_chain_is_named(hub):
    with raw(hub) as db:
        db.execute("INSERT INTO audit (at, actor, action, subject, detail) VALUES "
                   "('2026-01-01T00:00:00+00:00', 'admin:eve', 'device.remove', 'd', '{}')")
    assert [kind for _, kind in kinds(verify(hub))] == ["outside-chain"]


def test_a_truncated_tail_is_caught_by_the_signed_timestamp(hub):
    with raw(hub) as db:
        for seq in (11, 12):
            db.execute("DELETE FROM audit WHERE id = ?", (chain_row(db, seq)[1],))
        db.execute("DELETE FROM audit_chain WHERE seq > 10")
    report = verify(hub)
    assert kinds(report) == [(11, "truncated")]
    assert "entries 11..12 were cut off" in report.problems[0].message


def test_entries_resigned_with_a_foreign_key_are_named(hub):
    with raw(hub) as db:
        db.execute("UPDATE audit SET subject = 'nothing happened' WHERE id = ?",
                   (chain_row(db, 9)[1],))
        rewrite_from(db, 9, foreign_signer())
    report = verify(hub)
    assert report.first_bad_seq == 9
    assert {kind for _, kind in kinds(report)} >= {"unknown-key"}


def test_a_forged_signature_under_the_trusted_key_id_is_named(hub):
    forger = foreign_signer()
    with raw(hub) as db:
        real_key_id = chain_row(db, 3)[4]
        db.execute("UPDATE audit SET subject = 'other' WHERE id = ?", (chain_row(db, 3)[1],))
        rewrite_from(db, 3, forger)
        db.execute("UPDATE audit_chain SET key_id = ?", (real_key_id,))
    report = verify(hub)
    assert report.first_bad_seq == 3 and (3, "bad-signature") in kinds(report)


def test_a_chain_rewritten_with_the_hubs_own_key_contradicts_a_device_witness(hub):
    database = HubDatabase(hub / "hub.db")
    try:
        head = database.query("SELECT seq, hash FROM audit_chain ORDER BY seq DESC LIMIT 1")[0]
    finally:
        database.close()
    witnessed = AuditHead(seq=head[0], hash=head[1])
    witness = device_witness(hub, witnessed)
    assert verify(hub, [witness]).ok
    # A compromised hub (it holds the timestamp key) edits entry 2, recomputes and
    # re-signs every later entry, and re-anchors the timestamp: all of that verifies...
    with raw(hub) as db:
        db.execute("UPDATE audit SET actor = 'hub' WHERE id = ?", (chain_row(db, 2)[1],))
        rewrite_from(db, 2, entry_signer(hub / "hub.db"))
    anchor_head(HubDir(hub))
    assert verify(hub, []).ok
    # ...but not against the head a device signed.
    report = verify(hub, [witness])
    assert kinds(report) == [(12, "rewritten")]
    assert "dev-1234" in report.problems[0].message


def test_witnesses_kept_from_heartbeats_are_exported_and_checked(hub):
    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    with raw(hub) as db:
        db.execute("INSERT INTO devices (device_id, public_key, name, hostname, grp, site, "
                   "status, enrolled_at) VALUES ('dev-5678', ?, 'n', 'h', 'g', 's', "
                   "'accepted', '2026-01-01')", (public,))
        head = AuditHead(seq=12, hash=chain_row(db, 12)[3])
        older = AuditHead(seq=11, hash=chain_row(db, 11)[3])
    database = HubDatabase(hub / "hub.db")
    try:
        for witnessed in (head, older):  # the older head must not replace the newer
            signed = SignedHeartbeat.sign(Heartbeat(device_id="dev-5678", issued_at="t",
                                                    audit_head=witnessed), key)
            with database.transaction() as db:
                record(db, [Witness("dev-5678", witnessed, "t", signed.to_bytes(), "t")])
        exported = export_witnesses(database)
    finally:
        database.close()
    assert [(w["device_id"], w["seq"]) for w in exported] == [("dev-5678", 12)]
    report = verify(hub)
    assert report.ok and report.witnessed_devices == ["dev-5678"]
    with raw(hub) as db:  # a witness the hub altered no longer verifies
        db.execute("UPDATE audit_witnesses SET heartbeat = replace(heartbeat, '12', '11')")
    assert [kind for _, kind in kinds(verify(hub))] == ["bad-witness"]


def test_a_truncation_the_timestamp_was_rewound_to_hide_is_caught_by_a_witness(hub):
    with raw(hub) as db:
        witness = device_witness(hub, AuditHead(seq=12, hash=chain_row(db, 12)[3]))
        db.execute("DELETE FROM audit WHERE id = ?", (chain_row(db, 12)[1],))
        db.execute("DELETE FROM audit_chain WHERE seq = 12")
    anchor_head(HubDir(hub))  # the hub re-anchors the shortened chain
    assert verify(hub, []).ok
    assert kinds(verify(hub, [witness])) == [(12, "truncated")]


def test_an_older_hubs_log_is_adopted_and_trust_starts_at_the_upgrade(initialized_hub_dir):
    hub = initialized_hub_dir
    with raw(hub) as db:  # as a hub before the chain left it: rows, no chain
        db.execute("DELETE FROM audit_chain")
        db.execute("INSERT INTO audit (at, actor, action, subject, detail) VALUES "
                   "('2025-01-01T00:00:00+00:00', 'admin:old', 'publish', 'app', 'not json')")
    anchor_head(HubDir(hub))
    write_entries(hub, 2)
    report = verify(hub)
    assert report.ok, report.problems
    assert report.entries == 6 and report.trust_starts_at == 4
    database = HubDatabase(hub / "hub.db")
    try:
        start = export_chain(database)[3]
    finally:
        database.close()
    assert start["action"] == CHAIN_START_ACTION
    assert start["detail"] == {"adopted": 3, "first_seq": 1, "last_seq": 3}


def test_heartbeats_of_older_agents_without_a_head_still_verify():
    key = Ed25519PrivateKey.generate()
    old = {"device_id": "dev-1234", "issued_at": "2026-01-01T00:00:00+00:00"}
    body = canonical_json({"heartbeat": old, "signature": sign_detached(key, canonical_json(old))})
    signed = SignedHeartbeat.from_bytes(body, "test")
    signed.verify(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))
    assert signed.heartbeat.audit_head is None and signed.to_bytes() == body


_WRITER = """
import sys
from pathlib import Path
from hub.database import HubDatabase
database = HubDatabase(Path(sys.argv[1]))
for number in range(int(sys.argv[3])):
    with database.transaction() as db:
        database.audit(db, sys.argv[2], "test.concurrent", str(number))
database.close()
"""


def test_two_processes_writing_at_once_leave_one_valid_chain(hub):
    writers = [subprocess.Popen([sys.executable, "-c", _WRITER, str(hub / "hub.db"), name, "150"])
               for name in ("admin:cli", "hub")]
    assert [writer.wait(timeout=120) for writer in writers] == [0, 0]
    report = verify(hub)
    assert report.ok, report.problems
    assert report.entries == 12 + 300


def test_cli_verify_exits_1_naming_the_first_bad_entry(hub):
    runner = CliRunner()
    clean = runner.invoke(main, ["audit", "verify", "--dir", str(hub), "--json"])
    assert clean.exit_code == 0, clean.output
    assert json.loads(clean.output)["ok"] is True
    with raw(hub) as db:
        db.execute("UPDATE audit SET actor = 'admin:eve' WHERE id = ?", (chain_row(db, 8)[1],))
    bad = runner.invoke(main, ["audit", "verify", "--dir", str(hub)])
    assert bad.exit_code == 1
    assert "first bad entry 8" in bad.output and "[edited] entry 8" in bad.output


def test_cli_audit_list_takes_filters(hub):
    write_entries(hub, 3, actor="admin:other")
    runner = CliRunner()

    def listed(*argv: str) -> list[dict]:
        result = runner.invoke(main, ["audit", "--dir", str(hub), "--json", *argv])
        assert result.exit_code == 0, result.output
        return json.loads(result.output)

    assert {row["actor"] for row in listed("--actor", "admin:other")} == {"admin:other"}
    assert len(listed("--actor", "admin:other", "--limit", "2")) == 2
    assert {row["action"] for row in listed("--action", "test.*")} == {"test.step"}
    assert [row["subject"] for row in listed("--subject", "subject-3")] == ["subject-3"] * 1
    assert listed("--until", "2000-01-01") == []
    assert len(listed("--since", "2000-01-01")) == 15
    assert all(row["seq"] for row in listed())
    bad = runner.invoke(main, ["audit", "--dir", str(hub), "--since", "yesterday"])
    assert bad.exit_code == 1 and "not an ISO 8601" in bad.output


def test_entries_signed_before_and_after_a_timestamp_key_rotation_verify_from_the_roots(hub):
    directory = HubDir(hub)
    keys = KeyStore(directory.offline_keys, directory.online_keys)
    root_key = keys.load("root")
    old_key = keys.load("timestamp")
    new_key = foreign_signer()
    root = Metadata.from_bytes(served_roots(directory)[0])
    root.signed.revoke_key(old_key.public_key.keyid, "timestamp")
    root.signed.add_key(new_key.public_key, "timestamp")
    root.signed.version = 2
    root.sign(root_key)
    rotated = root.to_bytes()
    with raw(hub) as db:  # entries 11.. signed with the new key, as after the rotation
        rewrite_from(db, 11, new_key)
    database = HubDatabase(hub / "hub.db")
    try:
        entries = export_chain(database)
    finally:
        database.close()
    v1 = served_roots(directory)[0]
    assert verify_chain(entries, [v1, rotated]).ok
    assert kinds(verify_chain(entries, [v1])) == [(11, "unknown-key"), (12, "unknown-key")]
    # A root v2 the v1 root key did not sign is refused, and trusts nothing new.
    root.sign(foreign_signer())
    report = verify_chain(entries, [v1, root.to_bytes()])
    assert [kind for _, kind in kinds(report)][0] == "root"
    assert (11, "unknown-key") in kinds(report)


def test_cli_verify_refuses_roots_that_are_not_the_pinned_one(hub):
    runner = CliRunner()
    pinned = runner.invoke(main, ["audit", "verify", "--dir", str(hub), "--json"])
    assert json.loads(pinned.output)["ok"] is True  # pinned from offline-keys/offline.toml
    other = runner.invoke(main, ["audit", "verify", "--dir", str(hub), "--root-sha256",
                                 "ab" * 32, "--json"])
    assert other.exit_code == 1
    report = json.loads(other.output)
    assert report["problems"][0]["kind"] == "root"
    assert {p["kind"] for p in report["problems"]} >= {"unknown-key"}
    bad = runner.invoke(main, ["audit", "verify", "--dir", str(hub), "--root-sha256", "xyz"])
    assert bad.exit_code == 1 and "not a SHA-256" in bad.output
