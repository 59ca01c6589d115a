"""Admin commands a new user reached for and did not find, or found too trusting:
`policy set --dry-run`, `release list`, `devices remove`, `devices group` refusing a
misspelt group, `rollout start NAME` refusing to guess among several versions.

Real hub directories through the real CLI (click's runner), real SQLite, real signing.
"""


import pytest
from click.testing import CliRunner

from agent.wire.result import Outcome
from hub.cli.main import main
from hub.errors import UnknownDeviceError
from tests.fleet import tar_bytes
from tests.hub.test_rollout_cli import RELEASE, enroll, ok, report, run


@pytest.fixture
def hub(tmp_path):
    from hub.hub_dir import HubDir

    directory = tmp_path / "hub"
    assert CliRunner().invoke(main, ["init", "--dir", str(directory), "--json"]).exit_code == 0
    hub_dir = HubDir(directory)
    for version in ("2.0.0", "2.1.0"):
        release = tmp_path / f"{version}.toml"
        release.write_text(RELEASE.replace('"2.0.0"', f'"{version}"'))
        payload = tmp_path / f"{version}.tar"
        payload.write_bytes(tar_bytes({"bin/tool": version.encode()}))
        published = run(hub_dir, "publish", str(release), str(payload))
        assert published.exit_code == 0, published.output
    return hub_dir


def audit_actions(hub):
    return [row["action"] for row in ok(hub, "audit")]


def test_policy_set_dry_run_validates_and_publishes_nothing(hub, tmp_path):
    good = tmp_path / "lab.toml"
    good.write_text("paused = true\n")
    before = sorted(p.name for p in hub.targets.rglob("*"))
    checked = ok(hub, "policy", "set", "lab", str(good), "--dry-run")
    assert checked["published"] is False
    assert sorted(p.name for p in hub.targets.rglob("*")) == before
    assert "policy.set" not in audit_actions(hub)
    bad = tmp_path / "bad.toml"
    bad.write_text("pasued = true\n")
    refused = run(hub, "policy", "set", "lab", str(bad), "--dry-run")
    assert refused.exit_code == 1 and "pasued" in refused.output


def test_release_list_shows_every_version_newest_first(hub):
    listed = ok(hub, "release", "list")
    assert [(r["name"], r["version"]) for r in listed] == [("tool", "2.1.0"), ("tool", "2.0.0")]
    shown = run(hub, "release", "list")
    assert "tool@2.1.0" in shown.output and "tool@2.0.0" in shown.output


def test_rollout_start_with_several_versions_asks_for_name_at_version(hub):
    enroll(hub, "lab-1", "lab")
    refused = run(hub, "rollout", "start", "tool", "--group", "lab")
    assert refused.exit_code == 1
    assert "several versions of 'tool' are published (2.0.0, 2.1.0)" in refused.output
    assert "tool@VERSION" in refused.output
    assert ok(hub, "rollout", "start", "tool@2.1.0", "--group", "lab")["release"] == (
        "releases/tool/2.1.0/2.1.0.tar")


def test_devices_group_refuses_a_misspelt_group_unless_asked_to_create_it(hub, tmp_path):
    device = enroll(hub, "lab-1", "lab").device_id
    enroll(hub, "office-1", "office")
    refused = run(hub, "devices", "group", device, "ofice")
    assert refused.exit_code == 1 and "unknown group 'ofice'" in refused.output
    assert "--new-group" in refused.output
    assert "device.group" not in audit_actions(hub)
    assert run(hub, "devices", "group", device, "office").exit_code == 0
    assert run(hub, "devices", "group", device, "kiosks", "--new-group").exit_code == 0
    # A group an admin gave a policy is known too.
    (tmp_path / "servers.toml").write_text("paused = false\n")
    assert run(hub, "policy", "set", "servers", str(tmp_path / "servers.toml")).exit_code == 0
    assert run(hub, "devices", "group", device, "servers").exit_code == 0


def test_a_removed_device_stops_counting_and_its_results_are_refused(hub):
    kept = enroll(hub, "lab-1", "lab")
    gone = enroll(hub, "lab-2", "lab")
    ok(hub, "rollout", "start", "tool@2.0.0", "--group", "lab")
    shown = run(hub, "devices", "remove", "lab-2")
    assert shown.exit_code == 0, shown.output
    statuses = {row["name"]: row["status"] for row in ok(hub, "devices", "list")}
    assert statuses == {"lab-1": "accepted", "lab-2": "removed"}
    with pytest.raises(UnknownDeviceError, match="removed by an admin"):
        report(hub, gone, Outcome.FAILED)
    report(hub, kept, Outcome.INSTALLED)
    [status] = ok(hub, "rollout", "status")
    assert sum(stage["members"] for stage in status["stages"]) == 1
    assert "device.remove" in audit_actions(hub)
    again = run(hub, "devices", "remove", gone.device_id)
    assert again.exit_code == 1 and "already removed" in again.output


def test_tokens_are_listed_by_id_and_a_revoked_one_enrolls_nobody(hub):
    from hub.errors import EnrollmentRefusedError

    enroll(hub, "lab-1", "lab")  # the token `init` wrote works
    [first] = ok(hub, "token", "list")
    assert first["state"] == "valid" and first["uses"] == 1
    secret_part = hub.enrollment_token.read_text().split(".")[1]
    assert secret_part not in run(hub, "token", "list").output
    assert run(hub, "token", "revoke", first["id"]).exit_code == 0
    with pytest.raises(EnrollmentRefusedError, match="revoked"):
        enroll(hub, "lab-2", "lab")
    [listed] = ok(hub, "token", "list")
    assert listed["state"].startswith("revoked")
    again = run(hub, "token", "revoke", first["id"])
    assert again.exit_code == 1 and "already revoked" in again.output
    unknown = run(hub, "token", "revoke", "abcdef123456")
    assert unknown.exit_code == 1 and "no enrollment token" in unknown.output
    assert "token.revoke" in audit_actions(hub)
