"""A real hub and real agents in one process: what a device installs, and everything it
refuses — with nothing installed and the daemon still able to go on.

Hub (Hypercorn + libtorrent seeder + tracker) on 127.0.0.1, agents on 127.0.0.2+.
"""

import json
from datetime import UTC, datetime, timedelta

import pytest

from agent.errors import EnrollmentError, MetadataError
from agent.lifecycle import State
from hub.errors import PublishError
from hub.repository.tuf_repository import HubRepository
from tests.fleet import sha256, start_agent, start_hub, tree_state

FILES = {"VERSION": b"1.0.0", "bin/app": b"#!/bin/sh\necho app\n"}
HEALTH = (
    '[[health]]\ntype = "file-hash"\npath = "/opt/app/VERSION"\n'
    f'sha256 = "{sha256(b"1.0.0")}"\n'
)


@pytest.fixture
async def hub(tmp_path, nursery):
    return await start_hub(tmp_path, nursery)


async def test_agent_installs_signed_release_and_hub_stores_its_signed_result(hub, nursery):
    daemon, prefix = await start_agent(hub, nursery, "a1", "127.0.0.2")
    hub.rollout(hub.publish("app", "1.0.0", FILES, HEALTH))
    await daemon.cycle()
    assert (prefix / "opt/app/VERSION").read_bytes() == b"1.0.0"
    assert await daemon.deliver_results() == 0
    [result] = hub.results()
    assert result["outcome"] == "installed"
    assert result["device_id"] == daemon.identity.device_id


async def test_payload_not_matching_signed_target_is_refused_and_nothing_installed(hub, nursery):
    daemon, prefix = await start_agent(hub, nursery, "a1", "127.0.0.2")
    before = tree_state(prefix)
    real_download = daemon.peers.download

    async def corrupting_download(*args, **kwargs):
        # Stands in for a swarm that delivered different bytes than the admin signed
        # (libtorrent's own piece checks would catch most such swarms earlier).
        result = await real_download(*args, **kwargs)
        data = bytearray(result.path.read_bytes())
        data[-1] ^= 0xFF
        result.path.write_bytes(bytes(data))
        return result

    daemon.peers.download = corrupting_download
    hub.rollout(hub.publish("app", "1.0.0", FILES, HEALTH))
    await daemon.cycle()
    [deployment] = daemon.journal.deployments()
    assert deployment.state is State.FAILED
    assert "payload refused" in deployment.reason
    assert tree_state(prefix) == before
    await daemon.deliver_results()
    assert [r["outcome"] for r in hub.results()] == ["failed"]


def tamper_signature(path):
    metadata = json.loads(path.read_text())
    signature = metadata["signatures"][0]["sig"]
    metadata["signatures"][0]["sig"] = ("0" if signature[0] != "0" else "1") + signature[1:]
    path.write_text(json.dumps(metadata))


async def test_metadata_with_bad_signature_installs_nothing(hub, nursery):
    daemon, prefix = await start_agent(hub, nursery, "a1", "127.0.0.2")
    hub.rollout(hub.publish("app", "1.0.0", FILES, HEALTH))
    tamper_signature(hub.hub_dir.metadata / "timestamp.json")
    with pytest.raises(MetadataError, match="signature"):
        await daemon.cycle()
    assert daemon.journal.deployments() == []
    assert tree_state(prefix) == {}


async def test_expired_timestamp_installs_nothing(hub, nursery):
    daemon, prefix = await start_agent(hub, nursery, "a1", "127.0.0.2")
    hub.rollout(hub.publish("app", "1.0.0", FILES, HEALTH))
    two_days_ago = datetime.now(UTC) - timedelta(days=2)
    HubRepository(hub.hub_dir, now=lambda: two_days_ago).refresh_timestamp(force=True)
    with pytest.raises(MetadataError, match="expired"):
        await daemon.cycle()
    assert daemon.journal.deployments() == []
    assert tree_state(prefix) == {}


async def test_older_metadata_than_the_agent_has_seen_is_refused(hub, nursery):
    daemon, prefix = await start_agent(hub, nursery, "a1", "127.0.0.2")
    await daemon.cycle()  # sees the initial timestamp
    old_timestamp = (hub.hub_dir.metadata / "timestamp.json").read_bytes()
    hub.rollout(hub.publish("app", "1.0.0", FILES, HEALTH))
    await daemon.cycle()  # installs 1.0.0 and trusts the newer timestamp
    hub.rollout(hub.publish("app", "1.1.0", {"VERSION": b"1.1.0"}))
    (hub.hub_dir.metadata / "timestamp.json").write_bytes(old_timestamp)  # replayed
    with pytest.raises(MetadataError, match="rollback"):
        await daemon.cycle()
    assert (prefix / "opt/app/VERSION").read_bytes() == b"1.0.0"


async def test_unsafe_archive_in_a_signed_release_is_refused_before_anything_changes(
    hub, nursery, monkeypatch
):
    daemon, prefix = await start_agent(hub, nursery, "a1", "127.0.0.2")
    # The publisher refuses such archives (tested below); bypass it to play an admin
    # whose build pipeline signed a hostile payload: the endpoint must refuse it alone.
    monkeypatch.setattr("hub.releases.publisher._check_payload_fits_install", lambda *a: None)
    hub.rollout(hub.publish("app", "1.0.0", {"../../escaped": b"x", "VERSION": b"1"}))
    await daemon.cycle()
    [deployment] = daemon.journal.deployments()
    assert deployment.state is State.FAILED
    assert "nothing changed" in deployment.reason and ".." in deployment.reason
    assert tree_state(prefix) == {}
    assert not (prefix.parent / "escaped").exists()


async def test_publisher_refuses_unsafe_archive_and_signs_nothing(hub):
    targets_before = (hub.hub_dir.metadata / "timestamp.json").read_bytes()
    with pytest.raises(PublishError, match=r"\.\."):
        hub.publish("app", "1.0.0", {"../escaped": b"x"})
    assert (hub.hub_dir.metadata / "timestamp.json").read_bytes() == targets_before


async def test_enrollment_token_for_another_root_is_refused_and_nothing_trusted(hub, tmp_path):
    from agent.config import AgentConfig
    from agent.enrollment_flow import enroll

    config_file = tmp_path / "agent.toml"
    config_file.write_text(f'[agent]\nstate_dir = "{tmp_path / "state"}"\n')
    forged = hub.token[: -64] + "0" * 64
    with pytest.raises(EnrollmentError, match="expects"):
        await enroll(AgentConfig.load(config_file), hub.url, forged)
    assert not (tmp_path / "state").exists()


async def test_a_refused_enrollment_leaves_no_key_or_metadata_behind(hub, tmp_path):
    from agent.config import AgentConfig
    from agent.enrollment_flow import enroll
    from agent.wire.enrollment import EnrollmentToken

    config_file = tmp_path / "agent.toml"
    config_file.write_text(f'[agent]\nstate_dir = "{tmp_path / "state"}"\n')
    right_root = EnrollmentToken.parse(hub.token)
    wrong_secret = str(EnrollmentToken(secret="x" * 43, root_sha256=right_root.root_sha256))
    with pytest.raises(EnrollmentError):
        await enroll(AgentConfig.load(config_file), hub.url, wrong_secret)
    assert not (tmp_path / "state").exists()

    # An enrolled device refused on a later attempt keeps what it had.
    await enroll(AgentConfig.load(config_file), hub.url, hub.token)
    key = (tmp_path / "state" / "device.key").read_bytes()
    with pytest.raises(EnrollmentError):
        await enroll(AgentConfig.load(config_file), hub.url, wrong_secret)
    assert (tmp_path / "state" / "device.key").read_bytes() == key
    assert (tmp_path / "state" / "enrollment.json").exists()


async def test_a_failed_publish_leaves_no_payload_directory(hub, tmp_path):
    offline = hub.hub_dir.offline_keys
    moved = tmp_path / "keys-elsewhere"
    offline.rename(moved)  # the release key is not here: signing fails
    try:
        with pytest.raises(Exception, match="key"):
            hub.publish("app", "1.0.0", {"VERSION": b"1"})
    finally:
        moved.rename(offline)
    assert not (hub.hub_dir.payloads / "releases" / "app").exists()
