"""Every signed target at its consistent-snapshot path `DIR/HASH.NAME`, payloads included:
a real hub directory, real publishes, real links, served over real HTTP by the hub."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trio

from hub.config import HubConfig
from hub.hub_dir import HubDir
from hub.hub_init import initialize_hub
from hub.releases.publisher import publish_release
from hub.repository.metadata_signing import load_state
from hub.repository.target_files import consistent_paths, repair_target_files
from hub.repository.tuf_repository import HubRepository
from hub.rollouts.changes import start_rollout
from hub.serve import HubServer
from tests.fleet import free_port, tar_bytes

RELEASE = """name = "app"
version = "1.0.0"
severity = "important"
category = "application"
[install]
type = "file-tree"
root = "/opt/app"
"""


def make_hub(workdir: Path) -> tuple[HubDir, str]:
    """An initialized hub with one release published and rolled out; returns the hub and
    the release target."""
    hub_dir = HubDir(workdir / "hub")
    initialize_hub(hub_dir, None, f"127.0.0.1:{free_port('127.0.0.1')}", "",
                   f"127.0.0.1:{free_port('127.0.0.1')}")
    return hub_dir, publish(hub_dir, workdir)


def publish(hub_dir: HubDir, workdir: Path) -> str:
    payload = workdir / "app.tar"
    payload.write_bytes(tar_bytes({"VERSION": b"1.0.0", "data.bin": bytes(range(256)) * 64}))
    manifest = workdir / "RELEASE.toml"
    manifest.write_text(RELEASE)
    target = publish_release(hub_dir, manifest, payload).target
    start_rollout(hub_dir, target, "lab", new_group=True)
    return target


def listed_targets(hub_dir: HubDir) -> dict[str, tuple[int, dict[str, str]]]:
    state = load_state(hub_dir.metadata)
    listed = {**state.targets.signed.targets, **state.rollout.signed.targets}
    return {path: (target.length, dict(target.hashes)) for path, target in listed.items()}


def target_files_on_disk(hub_dir: HubDir) -> list[Path]:
    return sorted(p.relative_to(hub_dir.targets) for p in hub_dir.targets.rglob("*")
                  if not p.is_dir())


def test_every_signed_target_is_at_each_of_its_consistent_paths(tmp_path: Path) -> None:
    hub_dir, release = make_hub(tmp_path)
    listed = listed_targets(hub_dir)
    assert {release, f"{release}.torrent", "rollouts/lab.json"} <= set(listed)
    for path, (length, hashes) in listed.items():
        for file in consistent_paths(hub_dir.targets, path, hashes):
            data = file.read_bytes()
            assert len(data) == length, path
            assert hashlib.sha256(data).hexdigest() == hashes["sha256"], path
    payload_link = consistent_paths(hub_dir.targets, release, listed[release][1])[0]
    assert payload_link.stat().st_ino == (hub_dir.payloads / release).stat().st_ino, (
        "the payload is a hard link to the web seed's file, not a second copy"
    )


def test_a_failed_metadata_write_leaves_no_payload_link(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub_dir, _ = make_hub(tmp_path)
    before = target_files_on_disk(hub_dir)

    def disk_full(self: HubRepository, files: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(HubRepository, "_write", disk_full)
    manifest = tmp_path / "RELEASE.toml"
    manifest.write_text(RELEASE.replace("1.0.0", "1.0.1"))
    with pytest.raises(OSError, match="No space"):
        publish_release(hub_dir, manifest, tmp_path / "app.tar")
    assert target_files_on_disk(hub_dir) == before


def test_repair_links_payloads_of_a_hub_published_before_they_were_linked(
    tmp_path: Path,
) -> None:
    hub_dir, release = make_hub(tmp_path)
    link = consistent_paths(hub_dir.targets, release, listed_targets(hub_dir)[release][1])[0]
    link.unlink()  # what a hub published by an earlier version has on disk

    assert repair_target_files(hub_dir) == 1
    assert link.read_bytes() == (hub_dir.payloads / release).read_bytes()
    assert repair_target_files(hub_dir) == 0, "nothing left to do the second time"


def test_repair_refuses_a_payload_of_the_wrong_length(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    hub_dir, release = make_hub(tmp_path)
    link = consistent_paths(hub_dir.targets, release, listed_targets(hub_dir)[release][1])[0]
    link.unlink()
    (hub_dir.payloads / release).unlink()
    (hub_dir.payloads / release).write_bytes(b"truncated")

    assert repair_target_files(hub_dir) == 0
    assert not link.exists()
    assert "the metadata says" in caplog.text


@pytest.fixture
def other_filesystem() -> Iterator[Path]:
    """A directory on tmpfs (/dev/shm), which is not the filesystem tmp_path is on."""
    if not Path("/dev/shm").is_dir():
        pytest.skip("no /dev/shm here to put the repository on another filesystem")
    directory = Path(tempfile.mkdtemp(dir="/dev/shm", prefix="meisitong-targets-"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


async def test_serve_links_missing_payloads_and_serves_them_across_filesystems(
    tmp_path: Path, other_filesystem: Path, nursery: trio.Nursery
) -> None:
    hub_dir = HubDir(tmp_path / "hub")
    port = free_port("127.0.0.1")
    initialize_hub(hub_dir, None, f"127.0.0.1:{port}", "", f"127.0.0.1:{free_port('127.0.0.1')}")
    if hub_dir.root.stat().st_dev == other_filesystem.stat().st_dev:
        pytest.skip("/dev/shm is on the same filesystem as the test directory here")
    # The repository on another filesystem than the payloads: no hard link is possible.
    shutil.move(hub_dir.repository, other_filesystem / "repository")
    hub_dir.repository.symlink_to(other_filesystem / "repository")
    release = publish(hub_dir, tmp_path)
    hashes = listed_targets(hub_dir)[release][1]
    link = consistent_paths(hub_dir.targets, release, hashes)[0]
    assert link.is_symlink()
    link.unlink()  # as on a hub published by an earlier version

    server = HubServer(hub_dir, HubConfig.load(hub_dir.config_file))
    await nursery.start(server.run)
    assert link.is_symlink(), "serve repaired it at start"
    async with httpx.AsyncClient() as client:
        answer = await client.get(
            f"http://127.0.0.1:{port}/targets/{link.relative_to(hub_dir.targets)}"
        )
    assert answer.status_code == 200
    assert hashlib.sha256(answer.content).hexdigest() == hashes["sha256"]
    nursery.cancel_scope.cancel()
