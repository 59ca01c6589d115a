"""The targets metadata's lifetime is the admin's choice, short by default, renewed
offline (issue 12, attack 2, second half: targets expired after 365 days, so a frozen hub
could replay old targets, and hide a newly signed pause, for a year).

Real repositories and keys, the real CLI, and the agent's TUF client against the
repository over real HTTP on loopback. The frozen hub is played as the attacker would:
it keeps the old targets and re-signs timestamp and snapshot with its online keys.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from tuf.api.metadata import Metadata, Targets

from agent.errors import MetadataError
from agent.metadata_client import MetadataClient
from hub.cli.main import main
from hub.database import HubDatabase
from hub.hub_dir import HubDir
from hub.policy.policies import set_policy
from hub.repository.offline_record import OfflineRecord
from hub.repository.tuf_repository import HubRepository


@pytest.fixture
def hub(hub_dir: HubDir) -> HubDir:
    return hub_dir


def cli(*args: str):
    return CliRunner().invoke(main, list(args))


def targets_md(hub: HubDir) -> Targets:
    versions = sorted(hub.metadata.glob("*.targets.json"),
                      key=lambda p: int(p.name.split(".")[0]))
    return Metadata[Targets].from_file(str(versions[-1])).signed


def client(hub: HubDir, url: str, tmp_path: Path) -> MetadataClient:
    return MetadataClient(tmp_path / "agent/metadata", tmp_path / "agent/targets", url,
                          trusted_root=(hub.metadata / "1.root.json").read_bytes())


def test_init_defaults_to_14_days_and_records_the_choice_offline(hub: HubDir) -> None:
    result = cli("init", "--dir", str(hub.root))
    assert result.exit_code == 0, result.output
    assert "targets expire     every 14 days" in result.output
    assert OfflineRecord.load(hub.offline_keys).targets_expiry_days == 14
    left = targets_md(hub).expires - datetime.now(UTC)
    assert timedelta(days=13, hours=23) < left <= timedelta(days=14)


def test_targets_signed_later_use_the_admins_choice(hub: HubDir, tmp_path: Path) -> None:
    assert cli("init", "--dir", str(hub.root), "--targets-expiry-days", "5").exit_code == 0
    policy = tmp_path / "lab.toml"
    policy.write_text("paused = true\n")
    set_policy(hub, "lab", policy)
    left = targets_md(hub).expires - datetime.now(UTC)
    assert timedelta(days=4, hours=23) < left <= timedelta(days=5)


@pytest.mark.parametrize("days", ["0", "366"])
def test_init_refuses_a_lifetime_outside_1_to_365_days(hub: HubDir, days: str) -> None:
    result = cli("init", "--dir", str(hub.root), "--targets-expiry-days", days)
    assert result.exit_code == 1
    assert f"--targets-expiry-days: targets expiry must be 1 to 365 days, not {days}" \
        in result.output
    assert not hub.root.exists()


def test_a_frozen_hub_cannot_replay_targets_past_the_default_lifetime(
        hub: HubDir, served: str, tmp_path: Path) -> None:
    # Targets signed 15 days ago with the defaults; the hub froze them since, and keeps
    # timestamp and snapshot fresh with its online keys.
    signed_at = datetime.now(UTC) - timedelta(days=15)
    HubRepository.initialize(hub, now=lambda: signed_at)
    HubDatabase.create(hub.database).close()
    HubRepository(hub).refresh_timestamp(force=True)
    agent = client(hub, served, tmp_path)
    with pytest.raises(MetadataError, match="targets metadata expired at"):
        agent.refresh()  # before the fix: valid for 365 days, the replay was accepted
    # The admin re-signs offline; the device trusts the metadata again.
    result = cli("targets", "resign", "--dir", str(hub.root), "--json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["version"] == 2 and 13.9 < body["days_left"] <= 14
    agent.refresh()


def test_resign_needs_the_offline_keys_and_changes_nothing_without_them(
        hub: HubDir, tmp_path: Path) -> None:
    assert cli("init", "--dir", str(hub.root)).exit_code == 0
    (hub.offline_keys / "targets.pem").unlink()
    before = sorted(p.name for p in hub.metadata.iterdir())
    result = cli("targets", "resign", "--dir", str(hub.root), "--expiry-days", "30")
    assert result.exit_code == 1
    assert "the targets signing key" in result.output and "is missing" in result.output
    assert sorted(p.name for p in hub.metadata.iterdir()) == before
    assert OfflineRecord.load(hub.offline_keys).targets_expiry_days == 14


def test_resign_can_change_the_lifetime(hub: HubDir) -> None:
    assert cli("init", "--dir", str(hub.root)).exit_code == 0
    result = cli("targets", "resign", "--dir", str(hub.root), "--expiry-days", "30")
    assert result.exit_code == 0, result.output
    assert "(30 days)" in result.output
    assert OfflineRecord.load(hub.offline_keys).targets_expiry_days == 30
    left = targets_md(hub).expires - datetime.now(UTC)
    assert timedelta(days=29, hours=23) < left <= timedelta(days=30)
    audit = cli("audit", "--dir", str(hub.root), "--json")
    assert "targets.resign" in audit.output and "targets v2" in audit.output


def test_status_warns_three_days_before_expiry(hub: HubDir) -> None:
    assert cli("init", "--dir", str(hub.root), "--targets-expiry-days", "4").exit_code == 0
    quiet = cli("targets", "status", "--dir", str(hub.root))
    assert quiet.exit_code == 0 and "warning" not in quiet.output
    assert "(in 4.0 days; 4 days)" in quiet.output
    assert cli("targets", "resign", "--dir", str(hub.root), "--expiry-days", "2").exit_code == 0
    for command in (["targets", "status"], ["status"]):
        result = cli(*command, "--dir", str(hub.root))
        assert result.exit_code == 0, result.output
        assert "warning: targets metadata v2 expires at" in result.output, command
        assert "run `meisitong-hub targets resign` with the offline keys" in result.output
    body = json.loads(cli("status", "--dir", str(hub.root), "--json").output)
    assert body["targets"]["version"] == 2 and body["targets"]["warning"]
