"""The hub's TUF repository: real keys, real metadata, read back by a real ngclient over
HTTP on loopback."""

from __future__ import annotations

import logging
import os
import shutil
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tuf.api.metadata import DelegatedRole, Metadata, Root, Targets, Timestamp
from tuf.ngclient import Updater

from hub.errors import KeyMaterialError, RepositoryError
from hub.hub_dir import HubDir
from hub.repository.signing_keys import PASSPHRASE_ENV
from hub.repository.tuf_repository import HubRepository, ReleaseTargetEntry

ROLLOUT_PATH = "rollouts/canary.json"


@pytest.fixture
def hub(hub_dir: HubDir) -> HubDir:
    return hub_dir


def _updater(tmp_path: Path, url: str, root: bytes, name: str = "client") -> Updater:
    client_dir = tmp_path / name
    (client_dir / "targets").mkdir(parents=True, exist_ok=True)
    return Updater(
        metadata_dir=str(client_dir),
        metadata_base_url=f"{url}/metadata/",
        target_dir=str(client_dir / "targets"),
        target_base_url=f"{url}/targets/",
        bootstrap=root,
    )


def _tree(directory: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(directory)): path.read_bytes()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def _payload(tmp_path: Path, content: bytes = b"payload " * 1000) -> Path:
    path = tmp_path / "app.tar"
    path.write_bytes(content)
    return path


def test_initialize_writes_what_ngclient_fetches_with_consistent_snapshots(
    hub: HubDir, served: str, tmp_path: Path
) -> None:
    repo = HubRepository.initialize(hub)
    names = {path.name for path in hub.metadata.iterdir()}
    assert names == {
        "1.root.json",
        "root.json",
        "timestamp.json",
        "1.snapshot.json",
        "1.targets.json",
        "1.rollout.json",
    }
    assert repo.root_bytes() == (hub.metadata / "1.root.json").read_bytes()

    updater = _updater(tmp_path, served, repo.root_bytes())
    updater.refresh()
    assert updater.get_targetinfo("rollouts/none.json") is None


def test_rollout_delegation_is_terminating_and_limited_to_rollouts(hub: HubDir) -> None:
    HubRepository.initialize(hub)
    targets = Metadata[Targets].from_file(str(hub.metadata / "1.targets.json")).signed
    role = targets.get_delegated_role("rollout")
    assert isinstance(role, DelegatedRole)
    assert targets.delegations is not None
    assert role.paths == ["rollouts/*"]
    assert role.terminating
    online_key = targets.delegations.keys[role.keyids[0]]
    root = Metadata[Root].from_file(str(hub.metadata / "root.json")).signed
    assert online_key.keyid not in root.roles["targets"].keyids


def test_add_release_targets_signs_custom_fields_and_serves_every_target(
    hub: HubDir, served: str, tmp_path: Path
) -> None:
    repo = HubRepository.initialize(hub)
    payload = _payload(tmp_path)
    torrent = tmp_path / "app.tar.torrent"
    torrent.write_bytes(b"d4:infod6:lengthi8000eee")
    repo.add_release_targets(
        [
            ReleaseTargetEntry("releases/app/1.0/app.tar", payload, {"meisitong": {"v": "1.0"}}),
            ReleaseTargetEntry(
                "releases/app/1.0/app.tar.torrent", torrent, None, serve_via_tuf=True
            ),
        ]
    )
    targets = repo.release_targets()
    assert targets["releases/app/1.0/app.tar"].custom == {"meisitong": {"v": "1.0"}}
    assert targets["releases/app/1.0/app.tar"].length == payload.stat().st_size
    served_files = _tree(hub.targets)
    assert len(served_files) == 2, "the torrent, and the payload at its consistent name"
    sha256 = targets["releases/app/1.0/app.tar"].hashes["sha256"]
    linked = hub.targets / f"releases/app/1.0/{sha256}.app.tar"
    assert linked.stat().st_ino == payload.stat().st_ino, "a hard link, not a copy"

    updater = _updater(tmp_path, served, repo.root_bytes())
    for path, source in (("releases/app/1.0/app.tar.torrent", torrent),
                         ("releases/app/1.0/app.tar", payload)):
        info = updater.get_targetinfo(path)
        assert info is not None
        assert Path(updater.download_target(info)).read_bytes() == source.read_bytes()


def test_known_hashes_are_used_instead_of_hashing_again(hub: HubDir, tmp_path: Path) -> None:
    repo = HubRepository.initialize(hub)
    payload = _payload(tmp_path)
    claimed = "ab" * 32
    repo.add_release_targets(
        [ReleaseTargetEntry("releases/app/1.0/app.tar", payload, known_hashes={"sha256": claimed})]
    )
    assert repo.release_targets()["releases/app/1.0/app.tar"].hashes == {"sha256": claimed}


def test_set_rollout_document_needs_no_offline_keys(
    hub: HubDir, served: str, tmp_path: Path
) -> None:
    repo = HubRepository.initialize(hub)
    hub.offline_keys.rename(tmp_path / "offline-keys-on-a-usb-stick")

    HubRepository(hub).set_rollout_document(ROLLOUT_PATH, b'{"group":"canary"}')

    updater = _updater(tmp_path, served, repo.root_bytes())
    info = updater.get_targetinfo(ROLLOUT_PATH)
    assert info is not None
    assert Path(updater.download_target(info)).read_bytes() == b'{"group":"canary"}'


def test_add_release_targets_without_offline_key_fails_naming_role_and_file(
    hub: HubDir, tmp_path: Path
) -> None:
    HubRepository.initialize(hub)
    hub.offline_keys.rename(tmp_path / "elsewhere")
    with pytest.raises(KeyMaterialError) as caught:
        HubRepository(hub).add_release_targets(
            [ReleaseTargetEntry("releases/app/1.0/app.tar", _payload(tmp_path))]
        )
    assert "targets" in str(caught.value)
    assert str(hub.offline_keys / "targets.pem") in str(caught.value)


def test_failed_signing_leaves_the_repository_unchanged(hub: HubDir, tmp_path: Path) -> None:
    HubRepository.initialize(hub)
    before = _tree(hub.repository)
    (hub.online_keys / "timestamp.pem").unlink()
    torrent = tmp_path / "x.torrent"
    torrent.write_bytes(b"torrent")
    with pytest.raises(KeyMaterialError, match="timestamp"):
        HubRepository(hub).add_release_targets(
            [ReleaseTargetEntry("releases/x/1/x.torrent", torrent, serve_via_tuf=True)]
        )
    with pytest.raises(KeyMaterialError, match="timestamp"):
        HubRepository(hub).set_rollout_document(ROLLOUT_PATH, b"{}")
    assert _tree(hub.repository) == before


def test_a_swapped_key_file_is_refused_before_signing(hub: HubDir, tmp_path: Path) -> None:
    HubRepository.initialize(hub)
    shutil.copy(hub.online_keys / "snapshot.pem", hub.online_keys / "timestamp.pem")
    with pytest.raises(KeyMaterialError, match="not a key the metadata trusts for timestamp"):
        HubRepository(hub).refresh_timestamp(force=True)


@pytest.mark.parametrize(
    "path", ["releases/app/1.0/evil", "rollouts/a/b.json", "rollouts/../x", "rollouts/"]
)
def test_set_rollout_document_refuses_paths_outside_rollouts(hub: HubDir, path: str) -> None:
    repo = HubRepository.initialize(hub)
    with pytest.raises(RepositoryError):
        repo.set_rollout_document(path, b"{}")
    assert repo.rollout_targets() == {}


def test_release_targets_cannot_claim_rollout_paths(hub: HubDir, tmp_path: Path) -> None:
    repo = HubRepository.initialize(hub)
    with pytest.raises(RepositoryError, match="rollout"):
        repo.add_release_targets([ReleaseTargetEntry("rollouts/canary.json", _payload(tmp_path))])


def test_private_key_files_are_0600_in_0700_directories(hub: HubDir) -> None:
    old_umask = os.umask(0o022)
    try:
        HubRepository.initialize(hub)
    finally:
        os.umask(old_umask)
    for directory in (hub.offline_keys, hub.online_keys):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    key_files = sorted(hub.offline_keys.glob("*.pem")) + sorted(hub.online_keys.glob("*.pem"))
    assert [path.name for path in key_files] == [
        "root.pem",
        "targets.pem",
        "rollout.pem",
        "snapshot.pem",
        "timestamp.pem",
    ]
    for path in key_files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_keys_do_not_appear_in_log_output(
    hub: HubDir, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSPHRASE_ENV, "correct horse battery staple")
    caplog.set_level(logging.DEBUG)
    repo = HubRepository.initialize(hub)
    repo.add_release_targets([ReleaseTargetEntry("releases/app/1.0/app.tar", _payload(tmp_path))])
    repo.set_rollout_document(ROLLOUT_PATH, b"{}")
    repo.refresh_timestamp(force=True)
    shutil.copy(hub.online_keys / "snapshot.pem", hub.online_keys / "timestamp.pem")
    with pytest.raises(KeyMaterialError):
        repo.refresh_timestamp(force=True)

    assert caplog.records, "the operations do log"
    logged = caplog.text
    for pem in list(hub.offline_keys.glob("*.pem")) + list(hub.online_keys.glob("*.pem")):
        for line in pem.read_text().splitlines():
            if not line.startswith("-----"):
                assert line not in logged, f"{pem.name} key material was logged"
    assert "correct horse" not in logged


def test_encrypted_offline_keys_need_the_passphrase(
    hub: HubDir, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSPHRASE_ENV, "s3cret passphrase")
    HubRepository.initialize(hub)
    for role in ("root", "targets"):
        assert (
            (hub.offline_keys / f"{role}.pem")
            .read_bytes()
            .startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
        )
    for role in ("snapshot", "timestamp", "rollout"):
        assert b"ENCRYPTED" not in (hub.online_keys / f"{role}.pem").read_bytes()
    entry = ReleaseTargetEntry("releases/app/1.0/app.tar", _payload(tmp_path))

    monkeypatch.delenv(PASSPHRASE_ENV)
    with pytest.raises(
        KeyMaterialError, match=f"targets signing key .* encrypted; set {PASSPHRASE_ENV}"
    ):
        HubRepository(hub).add_release_targets([entry])
    HubRepository(hub).set_rollout_document(ROLLOUT_PATH, b"{}")  # online: no passphrase

    monkeypatch.setenv(PASSPHRASE_ENV, "wrong")
    with pytest.raises(KeyMaterialError, match="wrong passphrase") as caught:
        HubRepository(hub).add_release_targets([entry])
    assert str(hub.offline_keys / "targets.pem") in str(caught.value)

    monkeypatch.setenv(PASSPHRASE_ENV, "s3cret passphrase")
    HubRepository(hub).add_release_targets([entry])
    assert "releases/app/1.0/app.tar" in HubRepository(hub).release_targets()


def test_initialize_refuses_an_existing_repository(hub: HubDir) -> None:
    repo = HubRepository.initialize(hub)
    root = repo.root_bytes()
    with pytest.raises(RepositoryError, match="refusing to initialize"):
        HubRepository.initialize(hub)
    assert repo.root_bytes() == root


def test_initialize_refuses_to_overwrite_existing_keys(hub: HubDir, tmp_path: Path) -> None:
    HubRepository.initialize(hub)
    shutil.rmtree(hub.metadata)
    with pytest.raises(KeyMaterialError, match="refusing to overwrite"):
        HubRepository.initialize(hub)


def test_refresh_timestamp_resigns_only_when_half_its_lifetime_is_gone(
    hub: HubDir, served: str, tmp_path: Path
) -> None:
    start = datetime.now(UTC)
    clock = {"now": start}
    repo = HubRepository.initialize(hub, now=lambda: clock["now"])

    def versions() -> tuple[int, int]:
        timestamp = Metadata[Timestamp].from_file(str(hub.metadata / "timestamp.json")).signed
        return timestamp.version, timestamp.snapshot_meta.version

    assert repo.refresh_timestamp() is False
    assert versions() == (1, 1)
    assert repo.refresh_timestamp(force=True) is True
    assert versions() == (2, 1)

    clock["now"] = start + timedelta(hours=13)
    assert repo.refresh_timestamp() is True
    assert versions() == (3, 1)
    assert repo.refresh_timestamp() is False

    clock["now"] = start + timedelta(days=16)
    assert repo.refresh_timestamp() is True
    assert versions() == (4, 2), "snapshot past half its 30 days is re-signed too"

    clock["now"] = datetime.now(UTC)  # the client checks expiry against real time
    repo.refresh_timestamp(force=True)
    updater = _updater(tmp_path, served, repo.root_bytes())
    updater.refresh()


def test_root_sha256_is_the_hash_of_the_served_root(hub: HubDir) -> None:
    import hashlib

    repo = HubRepository.initialize(hub)
    assert (
        repo.root_sha256() == hashlib.sha256((hub.metadata / "root.json").read_bytes()).hexdigest()
    )
