"""`meisitong-hub evidence export` and `python -m hub.evidence_verify`: a bundle from a
real hub verifies standalone (no database: the hub directory is deleted first), and
tampering with a record, the audit chain, the signed metadata or the report is caught
and named."""

import json
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.wire.heartbeat import Heartbeat, SignedHeartbeat
from hub.audit.anchor import anchor_head
from hub.audit.witnesses import Witness, record
from hub.database import HubDatabase
from hub.evidence.bundle import read_bundle
from hub.evidence.verify import verify_bundle
from tests.hub.test_compliance_cli import make_fleet, ok

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def bundle_dir(tmp_path):
    """A bundle of the compliance fleet (with an admin exception, a chain anchored in
    the timestamp), whose hub directory is gone."""
    hub, devices = make_fleet(tmp_path)
    ok(hub, "exceptions", "add", "web-4", "ssl", "--reason", "kiosk", "--expires",
       (datetime.now(UTC) + timedelta(days=3)).date().isoformat())
    head = anchor_head(hub)
    identity = devices["web-1"]  # web-1 signs the head back in a heartbeat
    signed = SignedHeartbeat.sign(Heartbeat(device_id=identity.device_id,
                                            issued_at=datetime.now(UTC).isoformat(),
                                            audit_head=head), identity.private_key)
    database = HubDatabase(hub.database)
    try:
        with database.transaction() as db:
            record(db, [Witness(identity.device_id, head, signed.heartbeat.issued_at,
                                signed.to_bytes(), datetime.now(UTC).isoformat())])
    finally:
        database.close()
    out = tmp_path / "evidence"
    since = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    manifest = json.loads(ok(hub, "evidence", "export", "--since", since, str(out), "--json"))
    assert manifest["results"] == 3 and manifest["report_rows"] == 5
    shutil.rmtree(hub.root)
    return out


def verify(path):
    return verify_bundle(read_bundle(path))


def edit_json(path, change):
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_an_untouched_bundle_verifies_standalone_and_recomputes_the_report(bundle_dir):
    done = subprocess.run([sys.executable, "-m", "hub.evidence_verify", str(bundle_dir),
                           "--json"], capture_output=True, text=True, cwd=ROOT,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout)
    assert result["ok"] and result["records_verified"] == 3 == result["records"]
    assert result["devices"] == 5 and result["witnesses"] == 1
    assert result["witnessed_through"] == result["audit_entries"]
    assert any("presence.json" in note for note in result["notes"])


def test_a_tampered_record_is_named_by_its_id_and_device(bundle_dir):
    path = bundle_dir / "results.jsonl"
    lines = path.read_text().splitlines()
    record = json.loads(lines[1])
    record["record"]["outcome"] = "installed"  # the reverted one claims success
    lines[1] = json.dumps(record)
    path.write_text("\n".join(lines) + "\n")
    result = verify(bundle_dir)
    assert "record" in result.failed_parts and "chain" not in result.failed_parts
    [finding] = [f for f in result.findings if f.part == "record"]
    assert record["record"]["record_id"] in finding.message
    assert "signature does not verify" in finding.message


def test_a_removed_record_makes_the_report_disagree_row_by_row(bundle_dir):
    path = bundle_dir / "results.jsonl"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[1:]) + "\n")
    result = verify(bundle_dir)
    assert result.failed_parts == ["report"]
    assert any("status is 'compliant' in the report" in f.message for f in result.findings)


def test_an_edited_audit_entry_is_caught_as_the_chain(bundle_dir):
    def soften(entries):
        for entry in entries:
            if entry["action"] == "exception.add":
                entry["detail"]["expires_at"] = "2099-01-01T00:00:00+00:00"

    edit_json(bundle_dir / "audit" / "chain.json", soften)
    result = verify(bundle_dir)
    assert "chain" in result.failed_parts
    assert any("[edited]" in f.message for f in result.findings if f.part == "chain")


def test_a_changed_policy_file_is_caught_as_the_metadata(bundle_dir):
    path = bundle_dir / "targets" / "policies" / "web.toml"
    path.write_text("deadline_hours = { critical = 9999 }\n")
    result = verify(bundle_dir)
    assert "metadata" in result.failed_parts
    assert any("policies/web.toml does not match" in f.message for f in result.findings)


def test_a_doctored_report_is_caught_as_the_report_alone(bundle_dir):
    def flatter(report):
        for summary in report["summary"]:
            summary["share"] = 1.0
        [reverted] = [row for row in report["rows"] if row["status"] == "reverted"]
        reverted["status"] = "compliant"

    edit_json(bundle_dir / "report.json", flatter)
    result = verify(bundle_dir)
    assert result.failed_parts == ["report"]
    messages = [f.message for f in result.findings]
    # web: 4 devices, web-4 excepted, web-1 alone installed in time
    assert any(m.startswith("summary web/critical: share is 1.0 in the report, 0.333333 "
                            "recomputed") for m in messages), messages
    assert any("status is 'compliant' in the report, 'reverted' recomputed" in m
               for m in messages), messages
    done = subprocess.run([sys.executable, "-m", "hub.evidence_verify", str(bundle_dir)],
                          capture_output=True, text=True, cwd=ROOT,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 1 and "tampered or unverifiable: report" in done.stderr


def test_a_directory_that_is_no_bundle_exits_2_naming_it(tmp_path):
    done = subprocess.run([sys.executable, "-m", "hub.evidence_verify", str(tmp_path)],
                          capture_output=True, text=True, cwd=ROOT,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 2 and "not an evidence bundle" in done.stderr


def test_a_cut_chain_tail_is_caught_by_the_head_the_signed_timestamp_anchors(bundle_dir):
    """Dropping the last entry (the exception, say) is no edit of any entry, but the
    timestamp names a head the chain no longer reaches."""
    edit_json(bundle_dir / "audit" / "chain.json", lambda entries: entries.pop())
    result = verify(bundle_dir)
    assert "chain" in result.failed_parts
    assert any("[truncated]" in f.message for f in result.findings if f.part == "chain")
