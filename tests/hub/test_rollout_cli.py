"""`meisitong-hub rollout …` and the controller on a real hub directory: what is signed
and published, what the audit log says, and that refused changes publish nothing.

Devices enroll through the real `enroll_device` (a signed request with the hub's token);
results go through the real `ingest_result`. Documents are read back through the agent's
MetadataClient, served from the hub directory by the simulation's file fetcher.
"""

import base64
import json
import shutil
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tuf.api.metadata import Metadata

from agent.device_identity import DeviceIdentity
from agent.rollout_selection import in_current_stage
from agent.wire.enrollment import EnrollmentToken, EnrollRequest
from agent.wire.result import Outcome, ResultRecord, SignedResult
from agent.wire.rollout import GroupRollouts
from hub.cli.main import main
from hub.database import HubDatabase
from hub.devices.enrollment import enroll_device
from hub.devices.results_store import ingest_result
from hub.hub_dir import HubDir
from hub.repository.tuf_repository import HubRepository
from hub.rollouts.changes import apply_rollout_rules
from hub.rollouts.store import read_rollout
from tests.fleet import tar_bytes
from tests.sim.fleet_simulation import MetadataMirror

RELEASE = """name = "tool"
version = "2.0.0"
severity = "moderate"
category = "application"
[install]
type = "file-tree"
root = "/opt/tool"
"""
TARGET = "releases/tool/2.0.0/tool.tar"


def run(hub, *args):
    return CliRunner().invoke(main, [*args, "--dir", str(hub.root)])


def ok(hub, *args):
    result = run(hub, *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


@pytest.fixture
def hub(tmp_path):
    directory = tmp_path / "hub"
    assert CliRunner().invoke(main, ["init", "--dir", str(directory), "--json"]).exit_code == 0
    (tmp_path / "RELEASE.toml").write_text(RELEASE)
    (tmp_path / "tool.tar").write_bytes(tar_bytes({"bin/tool": b"x"}))
    hub_dir = HubDir(directory)
    assert run(hub_dir, "publish", str(tmp_path / "RELEASE.toml"),
               str(tmp_path / "tool.tar")).exit_code == 0
    return hub_dir


def enroll(hub, name, group):
    identity = DeviceIdentity(Ed25519PrivateKey.generate())
    token = EnrollmentToken.parse(hub.enrollment_token.read_text().strip())
    request = EnrollRequest(
        token_secret=token.secret, device_id=identity.device_id,
        public_key=base64.b64encode(identity.public_key_raw).decode(),
        name=name, hostname=name, group=group, site="hq",
    ).signed_with(identity.private_key)
    database = HubDatabase(hub.database)
    try:
        enroll_device(database, request)
    finally:
        database.close()
    return identity


def report(hub, identity, outcome):
    record = ResultRecord(
        record_id=str(uuid.uuid4()), device_id=identity.device_id, release=TARGET,
        name="tool", version="2.0.0", outcome=outcome,
        started_at="2026-11-25T00:00:00+00:00", finished_at="2026-11-25T00:01:00+00:00",
    )
    database = HubDatabase(hub.database)
    try:
        ingest_result(database, SignedResult.sign(record, identity.private_key))
    finally:
        database.close()


def signed_document(hub, tmp_path, group):
    """The group's document as an agent gets it: verified through TUF."""
    mirror = MetadataMirror(hub, tmp_path / f"agent-{uuid.uuid4().hex[:6]}")
    mirror.client.refresh()
    data = mirror.client.rollout_document(group)
    return None if data is None else GroupRollouts.from_bytes(data, group)


def published_state(hub):
    """Everything a refused change must leave as it was."""
    database = HubDatabase(hub.database)
    try:
        rows = [tuple(r) for r in database.query("SELECT * FROM rollouts ORDER BY release")]
        audit = database.query("SELECT count(*) FROM audit")[0][0]
    finally:
        database.close()
    return (hub.metadata / "timestamp.json").read_bytes(), rows, audit


def test_start_signs_stages_and_pilots_into_every_group_that_must_see_them(hub, tmp_path):
    enroll(hub, "lab-1", "lab")
    enroll(hub, "lab-2", "lab")
    canary = enroll(hub, "canary-1", "canary")
    shown = ok(hub, "rollout", "start", "tool", "--group", "lab", "--stages", "5,50,100",
               "--pilot-devices", "lab-1", "--pilot-groups", "canary")
    assert shown["stages"] == [5, 50, 100] and shown["stage_percent"] == 5
    lab_doc = signed_document(hub, tmp_path, "lab")
    canary_doc = signed_document(hub, tmp_path, "canary")
    [entry] = lab_doc.rollouts
    assert entry.release == TARGET and entry.current_stage == 0
    assert len(entry.pilot_devices) == 1 and entry.pilot_devices[0].startswith("dev-")
    assert entry.pilot_groups == ["canary"]
    assert canary_doc.rollouts == [entry]  # canary devices read their own group's document
    assert in_current_stage(entry, canary.device_id, "canary")


def test_a_change_to_several_groups_is_one_signed_rollout_version(hub):
    enroll(hub, "lab-1", "lab")
    enroll(hub, "canary-1", "canary")

    def rollout_version():
        files = sorted(hub.metadata.glob("*.rollout.json"),
                       key=lambda p: int(p.name.split(".")[0]))
        return Metadata.from_bytes(files[-1].read_bytes()).signed.version

    before = rollout_version()
    ok(hub, "rollout", "start", "tool", "--group", "lab", "--pilot-groups", "canary")
    assert rollout_version() == before + 1
    assert set(HubRepository(hub).rollout_targets()) == {"rollouts/lab.json",
                                                         "rollouts/canary.json"}


def test_status_shows_each_stage_and_what_the_controller_waits_for(hub):
    devices = [enroll(hub, f"lab-{i}", "lab") for i in range(3)]
    ok(hub, "rollout", "start", "tool", "--group", "lab", "--stages", "100",
       "--min-results", "2", "--soak", "0s")
    report(hub, devices[0], Outcome.INSTALLED)
    [status] = ok(hub, "rollout", "status")
    assert status["stages"] == [{"percent": 100, "members": 3, "required": 2, "successes": 1,
                                 "failures": 0, "current": True}]
    assert status["next"] == "stage 1 of 1 (100%): 1 of 2 results needed"
    assert status["sequential_test"]["results"] == 1
    text = run(hub, "rollout", "status")
    assert text.exit_code == 0 and "1 ok, 0 failed (needs 2)" in text.output


def test_superseded_results_count_neither_as_failures_nor_as_successes(hub):
    """A device whose deployment was superseded (a newer version installed while it
    waited) tried nothing: the release must not halt, nor advance, on such results."""
    devices = [enroll(hub, f"lab-{i}", "lab") for i in range(6)]
    ok(hub, "rollout", "start", "tool", "--group", "lab", "--stages", "100",
       "--min-results", "2", "--soak", "0s")
    for device in devices[:5]:
        report(hub, device, Outcome.SUPERSEDED)
    report(hub, devices[5], Outcome.INSTALLED)
    assert apply_rollout_rules(hub).changes == []
    [status] = ok(hub, "rollout", "status")
    assert status["state"] == "active"
    assert status["stages"][0]["successes"] == 1 and status["stages"][0]["failures"] == 0
    assert status["next"] == "stage 1 of 1 (100%): 1 of 2 results needed"


def test_controller_advances_then_halts_and_signs_each_change_as_controller(hub, tmp_path):
    devices = [enroll(hub, f"lab-{i}", "lab") for i in range(40)]
    ok(hub, "rollout", "start", "tool", "--group", "lab", "--stages", "0,100",
       "--pilot-devices", "lab-0,lab-1", "--soak", "1h")
    for device in devices[:2]:
        report(hub, device, Outcome.INSTALLED)
    now = datetime.now(UTC)
    assert apply_rollout_rules(hub, now).changes == []  # soaking
    [advance] = apply_rollout_rules(hub, now + timedelta(hours=1)).changes
    assert advance.verdict == "advance" and advance.stage_percent == 100
    for device in devices[2:4]:
        report(hub, device, Outcome.REVERTED)
    [halt] = apply_rollout_rules(hub, now + timedelta(hours=1, minutes=1)).changes
    assert halt.verdict == "halt"
    [entry] = signed_document(hub, tmp_path, "lab").rollouts
    assert entry.state == "halted" and "sequential test" in entry.reason
    audit = ok(hub, "audit")
    rows = [(r["actor"], r["action"], r["detail"].get("stage_percent")) for r in audit
            if r["action"].startswith("rollout.")]
    assert rows[0][1] == "rollout.start" and rows[0][0].startswith("admin")
    assert rows[1:] == [("controller", "rollout.advance", 100),
                        ("controller", "rollout.halt", 100)]
    assert "2 failures" in audit[-1]["detail"]["reason"]
    assert audit[-1]["detail"]["evidence"]["stage_failures"] == 2


def test_admin_changes_are_signed_and_audited_with_who_and_why(hub, tmp_path):
    enroll(hub, "lab-1", "lab")
    ok(hub, "rollout", "start", "tool", "--group", "lab")
    assert ok(hub, "rollout", "pause", "tool", "--group", "lab",
              "--reason", "waiting for vendor")["state"] == "paused"
    assert signed_document(hub, tmp_path, "lab").rollouts[0].state == "paused"
    assert ok(hub, "rollout", "advance", "tool", "--group", "lab")["stage_percent"] == 25
    assert ok(hub, "rollout", "resume", "tool@2.0.0", "--group", "lab")["state"] == "active"
    aborted = ok(hub, "rollout", "abort", "tool", "--group", "lab", "--reason", "CVE in it")
    assert aborted["state"] == "halted" and aborted["aborted"]
    [entry] = signed_document(hub, tmp_path, "lab").rollouts
    assert entry.state == "halted" and entry.reason == "CVE in it"
    audit = [r for r in ok(hub, "audit") if r["action"].startswith("rollout.")]
    assert [r["action"] for r in audit] == ["rollout.start", "rollout.pause",
                                            "rollout.advance", "rollout.resume",
                                            "rollout.abort"]
    assert all(r["actor"].startswith("admin") for r in audit)
    assert audit[1]["detail"]["reason"] == "waiting for vendor"
    assert audit[2]["detail"]["to_stage"] == 1


def test_resume_after_a_halt_counts_only_new_results(hub):
    devices = [enroll(hub, f"lab-{i}", "lab") for i in range(5)]
    ok(hub, "rollout", "start", "tool", "--group", "lab", "--stages", "100", "--soak", "0s")
    for device in devices[:2]:
        report(hub, device, Outcome.FAILED)
    [halt] = apply_rollout_rules(hub).changes
    assert halt.verdict == "halt"
    ok(hub, "rollout", "resume", "tool", "--group", "lab", "--reason", "bad disk batch")
    assert apply_rollout_rules(hub).changes == []  # the old failures no longer count
    [status] = ok(hub, "rollout", "status")
    assert status["stages"][0]["members"] == 3 and status["stages"][0]["failures"] == 0


@pytest.mark.parametrize(("args", "message"), [
    (["--stages", "2,25,25"], "stages must increase: 25% follows 25%"),
    (["--stages", "50,10"], "stages must increase: 10% follows 50%"),
    (["--stages", "2,25,101"], "stage 101% is outside 0..100"),
    (["--success-threshold", "1.2"], "success_threshold"),
    (["--pilot-groups", "lab"], "pilot group 'lab' is the rollout's own group"),
    (["--pilot-groups", "nowhere"], "unknown group(s) 'nowhere'"),
    (["--pilot-devices", "ghost"], "pilot device 'ghost': no enrolled device"),
    (["--pilot-devices", "office-1"], "is in group 'office', which will not see"),
])
def test_bad_rollout_start_is_refused_by_name_and_publishes_nothing(hub, args, message):
    enroll(hub, "lab-1", "lab")
    enroll(hub, "office-1", "office")
    before = published_state(hub)
    result = run(hub, "rollout", "start", "tool", "--group", "lab", *args)
    assert result.exit_code == 1, result.output
    assert message in " ".join(result.output.split())
    assert published_state(hub) == before


def test_unknown_release_or_group_is_refused_and_publishes_nothing(hub):
    enroll(hub, "lab-1", "lab")
    before = published_state(hub)
    unknown_release = run(hub, "rollout", "start", "nothing", "--group", "lab")
    assert unknown_release.exit_code == 1
    assert "no published release 'nothing'; published: tool@2.0.0" in unknown_release.output
    unknown_group = run(hub, "rollout", "start", "tool", "--group", "labb")
    assert unknown_group.exit_code == 1
    assert "unknown group(s) 'labb'" in unknown_group.output
    assert "known: lab" in " ".join(unknown_group.output.split())
    assert published_state(hub) == before


def test_a_group_an_admin_creates_is_known_without_devices(hub):
    ok(hub, "rollout", "start", "tool", "--group", "kiosks", "--new-group")
    audit = ok(hub, "audit")
    assert audit[-1]["action"] == "rollout.start" and audit[-1]["detail"]["new_group"]


def test_advance_on_a_halted_rollout_is_refused_and_publishes_nothing(hub):
    devices = [enroll(hub, f"lab-{i}", "lab") for i in range(3)]
    ok(hub, "rollout", "start", "tool", "--group", "lab")
    for device in devices[:2]:
        report(hub, device, Outcome.REVERTED)
    apply_rollout_rules(hub)
    before = published_state(hub)
    result = run(hub, "rollout", "advance", "tool", "--group", "lab")
    assert result.exit_code == 1
    assert "is halted (sequential test" in " ".join(result.output.split())
    assert published_state(hub) == before


@pytest.mark.parametrize(("setup", "command", "message"), [
    ([], ["pause"], None),
    ([["pause"]], ["pause"], "is paused, not active; nothing to pause"),
    ([], ["resume"], "is active; nothing to resume"),
    ([["abort"]], ["resume"], "was aborted"),
    ([["advance"], ["advance"]], ["advance"], "already at its final stage (100%)"),
    ([], ["advance", "--group", "office"], "no rollout of 'tool' to group 'office'"),
])
def test_changes_the_state_forbids_are_refused_and_publish_nothing(hub, setup, command,
                                                                    message):
    enroll(hub, "lab-1", "lab")
    ok(hub, "rollout", "start", "tool", "--group", "lab")
    for step in setup:
        ok(hub, "rollout", step[0], "tool", "--group", "lab")
    before = published_state(hub)
    args = ["rollout", command[0], "tool", *(command[1:] or ["--group", "lab"])]
    result = run(hub, *args)
    if message is None:
        assert result.exit_code == 0
        return
    assert result.exit_code == 1, result.output
    assert message in " ".join(result.output.split())
    assert published_state(hub) == before


def test_starting_twice_is_refused(hub):
    enroll(hub, "lab-1", "lab")
    ok(hub, "rollout", "start", "tool", "--group", "lab")
    again = run(hub, "rollout", "start", "tool", "--group", "lab")
    assert again.exit_code == 1 and "already rolling out to group 'lab'" in again.output


def test_nothing_is_half_applied_when_the_rollout_key_cannot_sign(hub):
    enroll(hub, "lab-1", "lab")
    key = hub.online_keys / "rollout.pem"
    shutil.move(key, key.with_suffix(".away"))
    before = published_state(hub)
    result = run(hub, "rollout", "start", "tool", "--group", "lab")
    assert result.exit_code == 1
    assert published_state(hub) == before


def test_reasons_that_look_like_console_markup_are_printed_as_text(hub):
    enroll(hub, "lab-1", "lab")
    ok(hub, "rollout", "start", "tool", "--group", "lab")
    reason = "[/opt/x] fails [bold]"
    aborted = run(hub, "rollout", "abort", "tool", "--group", "lab", "--reason", reason)
    assert aborted.exit_code == 0, aborted.output
    status = run(hub, "rollout", "status")
    assert status.exit_code == 0, status.output
    audit = run(hub, "audit")
    assert audit.exit_code == 0, audit.output
    assert reason in audit.output


def test_an_empty_new_group_rollout_stays_at_its_first_stage_until_someone_reports(hub):
    ok(hub, "rollout", "start", "tool", "--group", "kiosks", "--new-group", "--soak", "0s")
    for _ in range(5):
        assert apply_rollout_rules(hub).changes == []
    [status] = ok(hub, "rollout", "status")
    assert status["stage_percent"] == 2 and status["state"] == "active"
    assert "never advances on zero results" in status["next"]


def test_every_admin_change_is_audited_with_the_admins_login(hub, tmp_path):
    import getpass

    device = enroll(hub, "lab-1", "lab").device_id
    (tmp_path / "lab.toml").write_text("paused = false\n")
    assert run(hub, "policy", "set", "lab", str(tmp_path / "lab.toml")).exit_code == 0
    assert run(hub, "devices", "group", device, "office", "--new-group").exit_code == 0
    assert run(hub, "token", "create").exit_code == 0
    ok(hub, "rollout", "start", "tool", "--group", "office")
    audit = ok(hub, "audit")
    by_action = {row["action"]: row["actor"] for row in audit}
    expected = f"admin:{getpass.getuser()}"
    for action in ("hub.init", "release.publish", "policy.set", "device.group",
                   "token.create", "rollout.start"):
        assert by_action.get(action) == expected, (action, by_action)


def test_the_controller_logs_an_advance_as_routine_and_a_halt_as_a_warning(hub, caplog):
    import logging

    from hub.rollouts.runner import RolloutRuleRunner

    devices = [enroll(hub, f"lab-{i}", "lab") for i in range(3)]
    ok(hub, "rollout", "start", "tool", "--group", "lab", "--stages", "1,100", "--soak", "0s",
       "--pilot-devices", "lab-0", "--min-results", "1")
    report(hub, devices[0], Outcome.INSTALLED)
    runner = RolloutRuleRunner(hub)
    with caplog.at_level(logging.INFO, logger="hub.rollouts.runner"):
        assert [c.verdict for c in runner.run_if_due()] == ["advance"]
        for device in devices[1:]:
            report(hub, device, Outcome.FAILED)
        assert [c.verdict for c in runner.run_if_due()] == ["halt"]
    levels = {r.getMessage().split(": ")[1].split(" ")[0]: r.levelname for r in caplog.records
              if r.name == "hub.rollouts.runner"}
    assert levels == {"advance": "INFO", "halt": "WARNING"}


def test_regression_halt_thresholds_and_opt_out_are_stored_with_the_plan(hub):
    enroll(hub, "lab-1", "lab")
    enroll(hub, "office-1", "office")
    ok(hub, "rollout", "start", "tool", "--group", "lab", "--regression-min-ratio", "2",
       "--regression-alpha", "0.001")
    ok(hub, "rollout", "start", "tool", "--group", "office", "--no-regression-halt")
    database = HubDatabase(hub.database)
    try:
        with database.transaction() as db:
            lab, office = read_rollout(db, TARGET, "lab"), read_rollout(db, TARGET, "office")
    finally:
        database.close()
    assert lab is not None and office is not None
    assert lab.rules.regression_halt and lab.rules.regression_min_ratio == 2.0
    assert lab.rules.regression_alpha == 0.001
    assert not office.rules.regression_halt and office.rules.regression_min_ratio == 1.25
    refused = run(hub, "rollout", "start", "tool", "--group", "lab",
                  "--regression-min-ratio", "0.5")
    assert refused.exit_code != 0 and "regression-min-ratio" in refused.output
