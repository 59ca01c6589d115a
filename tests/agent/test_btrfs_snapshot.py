"""btrfs subvolume snapshots for an install root that is a subvolume, on a loop-mounted
btrfs image made by the test (skipped, with the reason, where mounting is not allowed)."""

from __future__ import annotations

import os
import subprocess

import pytest

from agent.install_prefix import InstallPrefix
from agent.installers import FileTreeInstaller
from agent.snapshots import (
    BtrfsSnapshot,
    FileTreeSnapshot,
    backend_for_manifest,
    backend_for_paths,
    is_btrfs_subvolume,
)
from agent.wire.release import FileTreeInstall
from tests.agent._mounts import loop_filesystem
from tests.agent._tar_fixtures import build_tar, file
from tests.agent._tree_state import tree_state


@pytest.fixture
def btrfs(tmp_path):
    with loop_filesystem(tmp_path / "btrfs.img", tmp_path / "mnt", "btrfs", "300M") as mnt:
        yield mnt


def subvolume(path, files):
    subprocess.run(["btrfs", "subvolume", "create", str(path)], check=True,
                   capture_output=True)
    for name, data in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_bytes(data)
    return path


async def test_install_root_on_a_subvolume_is_snapshotted_by_btrfs_and_restored_exactly(
    btrfs, tmp_path
):
    root = subvolume(btrfs / "opt-app", {"VERSION": b"1.0", "etc/app.conf": b"port = 1\n",
                                         "data/big.bin": os.urandom(1 << 20)})
    before = tree_state(root)
    prefix = InstallPrefix(btrfs)
    installer = FileTreeInstaller(FileTreeInstall(type="file-tree", root="/opt-app"))
    payload = build_tar(tmp_path / "p.tar", file("VERSION", b"2.0"), file("new/tool", b"t"))
    paths = installer.planned_paths(payload, prefix)
    backend = backend_for_paths(paths, root, FileTreeSnapshot())
    assert isinstance(backend, BtrfsSnapshot)
    manifest = backend.take(paths, tmp_path / "store-key")
    assert manifest.backend == "btrfs" and is_btrfs_subvolume(manifest.store)
    await installer.install(payload, prefix, tmp_path / "work")
    assert (root / "VERSION").read_bytes() == b"2.0"
    (root / "data/big.bin").write_bytes(b"changed by the new version")

    restorer = backend_for_manifest(manifest, FileTreeSnapshot())
    restorer.restore(manifest)
    assert tree_state(root) == before
    assert "matches its snapshot" in restorer.verify(manifest)
    assert is_btrfs_subvolume(root)
    restorer.restore(manifest)  # again: same tree
    assert tree_state(root) == before
    restorer.discard(manifest)
    restorer.discard(manifest)
    assert not os.path.lexists(manifest.store)
    assert sorted(os.listdir(btrfs)) == ["opt-app"]


def test_restore_interrupted_after_moving_the_installed_tree_aside_finishes(btrfs, tmp_path):
    root = subvolume(btrfs / "app", {"VERSION": b"1.0"})
    before = tree_state(root)
    backend = BtrfsSnapshot(root)
    manifest = backend.take([root / "VERSION"], tmp_path / "k")
    (root / "VERSION").write_bytes(b"2.0")
    os.rename(root, btrfs / ".app.meisitong-reverted")  # step 1 done, then the crash
    backend.restore(manifest)
    assert tree_state(root) == before
    assert not os.path.lexists(btrfs / ".app.meisitong-reverted")


def test_a_plain_directory_on_btrfs_falls_back_to_the_file_tree_copy(btrfs):
    (btrfs / "plain").mkdir()
    default = FileTreeSnapshot()
    assert backend_for_paths([btrfs / "plain/x"], btrfs / "plain", default) is default
    assert not is_btrfs_subvolume(btrfs / "plain")


def test_verify_names_a_file_that_differs_from_the_snapshot(btrfs, tmp_path):
    root = subvolume(btrfs / "app", {"VERSION": b"1.0"})
    backend = BtrfsSnapshot(root)
    manifest = backend.take([root], tmp_path / "k")
    (root / "extra").write_bytes(b"x")
    with pytest.raises(Exception, match="holds other entries"):
        backend.verify(manifest)
