"""`policy set/show`, `devices group`: validated, signed with the offline release key,
nothing changed by a bad policy or a missing key; the online rollout role cannot sign
policies."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

from hub.cli.main import main
from hub.database import HubDatabase
from hub.errors import RepositoryError
from hub.hub_dir import HubDir
from hub.repository.tuf_repository import HubRepository

GOOD = """timezone = "Europe/Berlin"
[[windows]]
name = "weekend"
when = "Sat,Sun 01:00-05:00"
"""


@pytest.fixture
def hub_dir(initialized_hub_dir):
    return initialized_hub_dir


def run(*args):
    return CliRunner().invoke(main, [str(arg) for arg in args])


def add_device(hub_dir, device_id="dev-00000000000000000001", group="office"):
    database = HubDatabase(hub_dir / "hub.db")
    try:
        with database.transaction() as db:
            db.execute(
                "INSERT INTO devices (device_id, public_key, name, hostname, grp, site, labels, "
                "status, enrolled_at, last_seen) VALUES (?, ?, ?, 'h', ?, 'default', '{}', "
                "'accepted', '2024-01-01T00:00:00+00:00', '2024-01-01T00:00:00+00:00')",
                (device_id, b"k" * 32, device_id[-4:], group))
    finally:
        database.close()
    return device_id


def signed_targets(hub_dir):
    return HubRepository(HubDir(hub_dir)).release_targets()


def test_policy_set_signs_the_policy_as_a_release_target_and_show_prints_it_back(
        hub_dir, tmp_path):
    (tmp_path / "office.toml").write_text(GOOD)
    result = run("policy", "set", "--dir", hub_dir, "office", tmp_path / "office.toml")
    assert result.exit_code == 0, result.output
    target = signed_targets(hub_dir)["policies/office.toml"]
    served = hub_dir / "repository/targets/policies" / f"{target.hashes['sha256']}.office.toml"
    assert served.read_text() == GOOD
    shown = run("policy", "show", "--dir", hub_dir, "office")
    assert shown.exit_code == 0 and GOOD in shown.output
    as_json = json.loads(run("policy", "show", "--dir", hub_dir, "office", "--json").output)
    assert as_json["toml"] == GOOD and as_json["leases"] == []
    audit = json.loads(run("audit", "--dir", hub_dir, "--json").output)
    assert audit[-1]["action"] == "policy.set"


@pytest.mark.parametrize(("bad", "says"), [
    ('[[windows]]\nname = "w"\nwhen = "Mon 25:00-26:00"\n', "windows.0.when"),
    ('timezone = "Europe/Atlantis"\n', "unknown time zone 'Europe/Atlantis'"),
    ("[deferral]\ndays = -1\n", "deferral.days"),
    ("[deadline_hours]\nsevere = 24\n", "unknown severity 'severe'"),
])
def test_a_bad_policy_is_refused_naming_the_key_and_the_old_one_stays(hub_dir, tmp_path,
                                                                      bad, says):
    (tmp_path / "good.toml").write_text(GOOD)
    assert run("policy", "set", "--dir", hub_dir, "office", tmp_path / "good.toml").exit_code == 0
    before = signed_targets(hub_dir)
    (tmp_path / "bad.toml").write_text(bad)
    result = run("policy", "set", "--dir", hub_dir, "office", tmp_path / "bad.toml")
    assert result.exit_code == 1
    assert says in result.output and "bad.toml" in result.output
    assert signed_targets(hub_dir) == before
    assert GOOD in run("policy", "show", "--dir", hub_dir, "office").output


def test_policy_set_needs_the_offline_release_key_and_changes_nothing_without_it(
        hub_dir, tmp_path):
    (tmp_path / "good.toml").write_text(GOOD)
    keys = tmp_path / "usb-stick"
    shutil.move(hub_dir / "offline-keys", keys)
    result = run("policy", "set", "--dir", hub_dir, "office", tmp_path / "good.toml")
    assert result.exit_code == 1 and "targets signing key" in result.output
    assert "policies/office.toml" not in signed_targets(hub_dir)
    assert run("policy", "show", "--dir", hub_dir, "office").exit_code == 1
    result = run("policy", "set", "--dir", hub_dir, "office", tmp_path / "good.toml",
                 "--offline-keys", keys)
    assert result.exit_code == 0, result.output


def test_the_online_rollout_role_cannot_sign_a_policy(hub_dir):
    with pytest.raises(RepositoryError, match="not a rollout document path"):
        HubRepository(HubDir(hub_dir)).set_rollout_document("policies/office.toml", b"")


def test_devices_group_publishes_a_signed_assignment_and_records_the_group(hub_dir):
    device = add_device(hub_dir)
    result = run("devices", "group", "--dir", hub_dir, device, "servers",
                 "--new-group")
    assert result.exit_code == 0, result.output
    assert f"assignments/{device}.json" in signed_targets(hub_dir)
    listed = json.loads(run("devices", "list", "--dir", hub_dir, "--json").output)
    assert listed[0]["group"] == "servers"
    unknown = run("devices", "group", "--dir", hub_dir, "dev-nope", "servers")
    assert unknown.exit_code == 1 and "no enrolled device 'dev-nope'" in unknown.output
    bad = run("devices", "group", "--dir", hub_dir, device, "Not A Group")
    assert bad.exit_code == 1 and "not a valid name" in bad.output
