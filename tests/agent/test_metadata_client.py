"""The agent's TUF client against a real hub repository served over HTTP on loopback.

Attacks are played the way an attacker who owns the hub server would: with the hub's
online keys (snapshot, timestamp, rollout) but never the admin's offline keys.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from securesystemslib.signer import Signer
from tuf.api.metadata import Metadata, MetaFile, Snapshot, TargetFile, Targets, Timestamp
from tuf.api.serialization.json import JSONSerializer

from agent.errors import MetadataError, PayloadVerificationError, TargetNotFoundError
from agent.metadata_client import MetadataClient
from hub.hub_dir import HubDir
from hub.repository.signing_keys import KeyStore
from hub.repository.tuf_repository import HubRepository, ReleaseTargetEntry

RELEASE = "releases/app/1.0/app.tar"
TORRENT = "releases/app/1.0/app.tar.torrent"
PAYLOAD = b"the payload " * 5000
CUSTOM = {"meisitong": {"manifest": {"name": "app", "version": "1.0"}}}


@dataclass
class Hub:
    dir: HubDir
    repo: HubRepository
    url: str
    payload: Path


@pytest.fixture
def hub(hub_dir: HubDir, served: str, tmp_path: Path) -> Hub:
    """A hub with one signed release (payload + torrent) and a canary rollout."""
    repo = HubRepository.initialize(hub_dir)
    payload = tmp_path / "app.tar"
    payload.write_bytes(PAYLOAD)
    torrent = tmp_path / "app.tar.torrent"
    torrent.write_bytes(b"d8:announce0:e")
    repo.add_release_targets(
        [
            ReleaseTargetEntry(RELEASE, payload, CUSTOM),
            ReleaseTargetEntry(TORRENT, torrent, serve_via_tuf=True),
        ]
    )
    repo.set_rollout_document("rollouts/canary.json", b'{"group":"canary"}')
    return Hub(hub_dir, repo, served, payload)


def _client(hub: Hub, tmp_path: Path, root: bytes | None = None) -> MetadataClient:
    return MetadataClient(
        metadata_dir=tmp_path / "agent" / "metadata",
        targets_dir=tmp_path / "agent" / "targets",
        hub_url=hub.url,
        trusted_root=root if root is not None else hub.repo.root_bytes(),
    )


def _serialize(md: Metadata[Any]) -> bytes:
    return md.to_bytes(JSONSerializer(compact=False))


def _forge(
    hub: Hub,
    role: str,
    change: Callable[[Metadata[Any]], None],
    signer: Signer,
) -> None:
    """As a hub-server attacker: change `role` (targets or rollout), sign it with
    `signer`, then publish a valid snapshot and timestamp with the online keys."""
    metadata = hub.dir.metadata
    online = KeyStore(hub.dir.offline_keys, hub.dir.online_keys)
    timestamp = Metadata[Timestamp].from_file(str(metadata / "timestamp.json"))
    snapshot_version = timestamp.signed.snapshot_meta.version
    snapshot = Metadata[Snapshot].from_file(str(metadata / f"{snapshot_version}.snapshot.json"))
    version = snapshot.signed.meta[f"{role}.json"].version
    forged = Metadata.from_file(str(metadata / f"{version}.{role}.json"))
    change(forged)
    forged.signed.version += 1
    forged.sign(signer)
    forged_bytes = _serialize(forged)
    (metadata / f"{forged.signed.version}.{role}.json").write_bytes(forged_bytes)
    snapshot.signed.meta[f"{role}.json"] = MetaFile.from_data(
        forged.signed.version, forged_bytes, ["sha256"]
    )
    snapshot.signed.version += 1
    snapshot.sign(online.load("snapshot"))
    snapshot_bytes = _serialize(snapshot)
    (metadata / f"{snapshot.signed.version}.snapshot.json").write_bytes(snapshot_bytes)
    timestamp.signed.snapshot_meta = MetaFile.from_data(
        snapshot.signed.version, snapshot_bytes, ["sha256"]
    )
    timestamp.signed.version += 1
    timestamp.sign(online.load("timestamp"))
    (metadata / "timestamp.json").write_bytes(_serialize(timestamp))


def _add_target(path: str, data: bytes) -> Callable[[Metadata[Any]], None]:
    def change(md: Metadata[Any]) -> None:
        md.signed.targets[path] = TargetFile.from_data(path, data, ["sha256"])

    return change


def test_round_trip_release_rollout_document_and_payload(hub: Hub, tmp_path: Path) -> None:
    client = _client(hub, tmp_path)
    client.refresh()

    release = client.release_target(RELEASE)
    assert release.custom == CUSTOM
    assert release.length == len(PAYLOAD)
    assert release.hashes == {"sha256": hashlib.sha256(PAYLOAD).hexdigest()}
    assert client.rollout_document("canary") == b'{"group":"canary"}'
    assert client.rollout_document("nobody") is None
    assert client.download_small_target(TORRENT) == b"d8:announce0:e"
    client.verify_payload(hub.payload, release)


def test_updates_published_after_a_refresh_are_seen_by_the_next(hub: Hub, tmp_path: Path) -> None:
    client = _client(hub, tmp_path)
    client.refresh()
    hub.repo.set_rollout_document("rollouts/canary.json", b'{"group":"canary","v":2}')
    assert client.rollout_document("canary") == b'{"group":"canary"}'
    client.refresh()
    assert client.rollout_document("canary") == b'{"group":"canary","v":2}'


def test_missing_release_target_raises_target_not_found(hub: Hub, tmp_path: Path) -> None:
    client = _client(hub, tmp_path)
    with pytest.raises(TargetNotFoundError, match="releases/app/9.9/app.tar"):
        client.release_target("releases/app/9.9/app.tar")
    with pytest.raises(TargetNotFoundError, match="rollout document path"):
        client.release_target("rollouts/canary.json")


def test_rollout_role_cannot_list_a_release_target(hub: Hub, tmp_path: Path) -> None:
    rollout_key = KeyStore(hub.dir.offline_keys, hub.dir.online_keys).load("rollout")
    _forge(hub, "rollout", _add_target("releases/evil", b"rm -rf /"), rollout_key)
    forged = Metadata[Targets].from_file(str(hub.dir.metadata / "3.rollout.json"))
    assert "releases/evil" in forged.signed.targets, "the hub served it, signed"

    client = _client(hub, tmp_path)
    client.refresh()
    with pytest.raises(TargetNotFoundError):
        client.release_target("releases/evil")
    with pytest.raises(TargetNotFoundError):
        client.download_small_target("releases/evil")
    assert client.rollout_document("canary") == b'{"group":"canary"}'


def test_targets_signed_with_an_online_key_are_refused(hub: Hub, tmp_path: Path) -> None:
    """A compromised hub cannot sign a release: it lacks the offline release key."""
    keys = KeyStore(hub.dir.offline_keys, hub.dir.online_keys)
    _forge(hub, "targets", _add_target("releases/evil/1.0/x", b"evil"), keys.load("snapshot"))
    client = _client(hub, tmp_path)
    with pytest.raises(MetadataError, match="signature of targets does not verify") as caught:
        client.refresh()
    assert "UnsignedMetadataError" in str(caught.value)


def test_payload_with_wrong_hash_is_refused(hub: Hub, tmp_path: Path) -> None:
    client = _client(hub, tmp_path)
    release = client.release_target(RELEASE)
    tampered = tmp_path / "tampered.tar"
    tampered.write_bytes(PAYLOAD[:-1] + b"!")
    with pytest.raises(PayloadVerificationError) as caught:
        client.verify_payload(tampered, release)
    message = str(caught.value)
    assert str(tampered) in message
    assert release.hashes["sha256"] in message
    assert hashlib.sha256(tampered.read_bytes()).hexdigest() in message


def test_payload_with_wrong_length_is_refused(hub: Hub, tmp_path: Path) -> None:
    client = _client(hub, tmp_path)
    release = client.release_target(RELEASE)
    short = tmp_path / "short.tar"
    short.write_bytes(PAYLOAD[:100])
    with pytest.raises(PayloadVerificationError, match=f"length 100 bytes.*{len(PAYLOAD)}"):
        client.verify_payload(short, release)
    long = tmp_path / "long.tar"
    long.write_bytes(PAYLOAD + b"more")
    with pytest.raises(PayloadVerificationError, match="more than"):
        client.verify_payload(long, release)
    with pytest.raises(PayloadVerificationError, match="cannot read"):
        client.verify_payload(tmp_path / "absent.tar", release)


def test_tampered_timestamp_signature_is_refused(hub: Hub, tmp_path: Path) -> None:
    path = hub.dir.metadata / "timestamp.json"
    data = json.loads(path.read_bytes())
    data["signed"]["expires"] = "2099-01-01T00:00:00Z"
    path.write_text(json.dumps(data))
    with pytest.raises(MetadataError, match="signature of timestamp does not verify"):
        _client(hub, tmp_path).refresh()


def test_tampered_byte_in_targets_metadata_is_refused(hub: Hub, tmp_path: Path) -> None:
    path = hub.dir.metadata / "2.targets.json"
    data = path.read_bytes()
    assert b'"1.0"' in data
    path.write_bytes(data.replace(b'"1.0"', b'"6.6"', 1))
    with pytest.raises(MetadataError, match="does not match the length and hash") as caught:
        _client(hub, tmp_path).refresh()
    assert "2.targets.json" in str(caught.value)


def test_expired_timestamp_is_refused_naming_the_expiry(
    hub_dir: HubDir, served: str, tmp_path: Path
) -> None:
    two_days_ago = datetime.now(UTC) - timedelta(days=2)
    repo = HubRepository.initialize(hub_dir, now=lambda: two_days_ago)
    hub = Hub(hub_dir, repo, served, tmp_path)
    expires = Metadata.from_file(str(hub_dir.metadata / "timestamp.json")).signed.expires
    with pytest.raises(MetadataError, match="timestamp metadata expired at") as caught:
        _client(hub, tmp_path).refresh()
    assert expires.isoformat() in str(caught.value)
    assert "ExpiredMetadataError" in str(caught.value)


def test_older_timestamp_after_a_newer_one_is_refused_as_rollback(hub: Hub, tmp_path: Path) -> None:
    path = hub.dir.metadata / "timestamp.json"
    old = path.read_bytes()
    old_version = Metadata.from_bytes(old).signed.version
    hub.repo.refresh_timestamp(force=True)
    client = _client(hub, tmp_path)
    client.refresh()

    path.write_bytes(old)
    with pytest.raises(MetadataError) as caught:
        _client(hub, tmp_path).refresh()
    message = str(caught.value)
    assert f"timestamp version {old_version} is older than the trusted {old_version + 1}" in message
    assert "rollback" in message
    assert "BadVersionNumberError" in message


def test_older_snapshot_version_is_refused_as_rollback(hub: Hub, tmp_path: Path) -> None:
    """A hub replaying an old snapshot under a fresh timestamp (signed with the online
    timestamp key) is caught too."""
    _client(hub, tmp_path).refresh()
    keys = KeyStore(hub.dir.offline_keys, hub.dir.online_keys)
    path = hub.dir.metadata / "timestamp.json"
    timestamp = Metadata[Timestamp].from_file(str(path))
    timestamp.signed.snapshot_meta = MetaFile(1)
    timestamp.signed.version += 1
    timestamp.sign(keys.load("timestamp"))
    path.write_bytes(_serialize(timestamp))
    with pytest.raises(MetadataError, match="older than the trusted 3: possible rollback"):
        _client(hub, tmp_path).refresh()


def test_refresh_timestamp_is_seen_by_the_client(hub: Hub, tmp_path: Path) -> None:
    client = _client(hub, tmp_path)
    client.refresh()
    assert hub.repo.refresh_timestamp(force=True)
    client.refresh()
    trusted = Metadata.from_file(str(tmp_path / "agent" / "metadata" / "timestamp.json"))
    assert trusted.signed.version == 4


def test_unreachable_hub_is_a_metadata_error(hub_dir: HubDir, tmp_path: Path) -> None:
    repo = HubRepository.initialize(hub_dir)
    hub = Hub(hub_dir, repo, "http://127.0.0.1:9", tmp_path)
    with pytest.raises(MetadataError, match="cannot connect to the hub at http://127.0.0.1:9"):
        _client(hub, tmp_path).refresh()


def test_a_root_from_another_hub_does_not_verify(hub: Hub, tmp_path: Path) -> None:
    other = HubRepository.initialize(HubDir(tmp_path / "other-hub"))
    with pytest.raises(MetadataError, match="signature of timestamp does not verify"):
        _client(hub, tmp_path, root=other.root_bytes()).refresh()


def test_a_rotated_root_is_kept_across_restarts(hub: Hub, tmp_path: Path) -> None:
    """After the client has verified root v2, the enrollment root v1 is still the bootstrap
    but v2 stays trusted even when the hub stops serving it."""
    keys = KeyStore(hub.dir.offline_keys, hub.dir.online_keys)
    root = Metadata.from_file(str(hub.dir.metadata / "root.json"))
    root.signed.version = 2
    root.sign(keys.load("root"))
    (hub.dir.metadata / "2.root.json").write_bytes(_serialize(root))
    enrollment_root = hub.repo.root_bytes()
    _client(hub, tmp_path, root=enrollment_root).refresh()

    (hub.dir.metadata / "2.root.json").unlink()
    client = _client(hub, tmp_path, root=enrollment_root)
    client.refresh()
    agent_root = Metadata.from_file(str(tmp_path / "agent" / "metadata" / "root.json"))
    assert agent_root.signed.version == 2


def test_invalid_enrollment_root_is_a_metadata_error(hub: Hub, tmp_path: Path) -> None:
    with pytest.raises(MetadataError, match="not TUF metadata"):
        _client(hub, tmp_path, root=b"not json")


def test_unchanged_timestamp_skips_the_chain(
    hub: Hub, tmp_path: Path, served_requests: list[str]
) -> None:
    client = _client(hub, tmp_path)
    assert client.refresh() is True
    assert client.rollout_document("canary") == b'{"group":"canary"}'
    served_requests.clear()

    assert client.refresh() is False
    assert served_requests == ["/metadata/timestamp.json"], "no root N+1, snapshot or targets"
    assert client.full_refreshes == 1
    assert client.release_target(RELEASE).custom == CUSTOM, "the verified state is kept"
    assert client.rollout_document("canary") == b'{"group":"canary"}'


def test_changed_timestamp_runs_the_chain_and_sees_the_change(
    hub: Hub, tmp_path: Path, served_requests: list[str]
) -> None:
    client = _client(hub, tmp_path)
    client.refresh()
    hub.repo.set_rollout_document("rollouts/canary.json", b'{"group":"canary","v":2}')
    served_requests.clear()

    assert client.refresh() is True
    assert "/metadata/2.root.json" in served_requests
    assert client.full_refreshes == 2
    assert client.rollout_document("canary") == b'{"group":"canary","v":2}'


def test_unchanged_timestamp_that_expired_is_refused_as_a_freeze(
    hub_dir: HubDir, served: str, tmp_path: Path
) -> None:
    """Skipping must not hide a freeze: a hub that keeps serving the trusted timestamp
    past its expiry gets the chain run again, which refuses it."""
    almost_a_day_ago = datetime.now(UTC) - timedelta(days=1) + timedelta(seconds=2)
    repo = HubRepository.initialize(hub_dir, now=lambda: almost_a_day_ago)
    client = MetadataClient(tmp_path / "m", tmp_path / "t", served, repo.root_bytes())
    client.refresh()
    time.sleep(2.5)
    with pytest.raises(MetadataError, match="timestamp metadata expired"):
        client.refresh()


def test_unchanged_timestamp_runs_the_chain_after_full_refresh_every(
    hub: Hub, tmp_path: Path, served_requests: list[str]
) -> None:
    """A root published without a new timestamp is still found, within that bound."""
    client = MetadataClient(tmp_path / "m", tmp_path / "t", hub.url, hub.repo.root_bytes(),
                            full_refresh_every=0)
    client.refresh()
    served_requests.clear()
    assert client.refresh() is True
    assert "/metadata/2.root.json" in served_requests


def test_unreachable_hub_after_a_refresh_is_still_a_metadata_error(
    hub: Hub, tmp_path: Path
) -> None:
    """A failed probe is no reason to skip: the chain runs and reports the hub."""
    client = _client(hub, tmp_path)
    client.refresh()
    client.hub_url = "http://127.0.0.1:9"
    with pytest.raises(MetadataError, match="cannot connect to the hub"):
        client.refresh()
