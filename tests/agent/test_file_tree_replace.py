"""`mode = "replace"`: a major upgrade replaces the whole tree, and `preserve` paths carry
the endpoint's user state (configs, profiles) across it; both modes rerun safely."""

from __future__ import annotations

import os

import pytest

from agent.install_prefix import InstallPrefix
from agent.installers import FileTreeInstaller
from agent.snapshots import FileTreeSnapshot
from agent.wire.release import FileTreeInstall, ReleaseManifest
from tests.agent._tar_fixtures import build_tar, file
from tests.agent._tree_state import tree_state

PRESERVE = ["etc/app.conf", "profiles"]


@pytest.fixture
def prefix(tmp_path):
    root = tmp_path / "prefix"
    app = root / "opt/app"
    for name, data in {
        "bin/app": b"app 1", "bin/old-tool": b"gone in 2.0",
        "etc/app.conf": b"port = 9999  # edited by the user\n",
        "profiles/alice/settings.json": b'{"theme": "dark"}',
        "share/old.dat": b"old data",
    }.items():
        (app / name).parent.mkdir(parents=True, exist_ok=True)
        (app / name).write_bytes(data)
    os.chmod(app, 0o750)
    return InstallPrefix(root)


def payload(tmp_path):
    return build_tar(tmp_path / "app-2.tar", file("bin/app", b"app 2", 0o755),
                     file("etc/app.conf", b"port = 8080  # 2.0 default\n"),
                     file("share/new.dat", b"new data"))


def replacing(preserve=PRESERVE):
    return FileTreeInstaller(FileTreeInstall(type="file-tree", root="/opt/app", mode="replace",
                                             preserve=preserve))


async def test_replace_mode_installs_a_whole_new_tree_keeping_the_preserved_paths(
    tmp_path, prefix
):
    app = prefix.path / "opt/app"
    before = tree_state(prefix.path)
    installer, tar = replacing(), payload(tmp_path)
    assert installer.planned_paths(tar, prefix) == [app]
    manifest = FileTreeSnapshot().take([app], tmp_path / "store")
    await installer.install(tar, prefix, tmp_path / "work")
    assert (app / "bin/app").read_bytes() == b"app 2"
    assert (app / "share/new.dat").read_bytes() == b"new data"
    assert not (app / "bin/old-tool").exists() and not (app / "share/old.dat").exists()
    assert (app / "etc/app.conf").read_bytes() == b"port = 9999  # edited by the user\n"
    assert (app / "profiles/alice/settings.json").read_bytes() == b'{"theme": "dark"}'
    assert os.stat(app).st_mode & 0o777 == 0o750
    assert sorted(os.listdir(prefix.path / "opt")) == ["app"]
    await installer.rollback(tar, prefix, tmp_path / "work")
    FileTreeSnapshot().restore(manifest)
    assert tree_state(prefix.path) == before


async def test_install_run_again_after_a_crash_half_way_through_the_swap_keeps_user_state(
    tmp_path, prefix
):
    app = prefix.path / "opt/app"
    installer, tar = replacing(), payload(tmp_path)
    # The crash: old tree parked, the new one not yet in place, a stale staging dir.
    os.rename(app, prefix.path / "opt/.app.meisitong-old")
    (prefix.path / "opt/.app.meisitong-new/junk").mkdir(parents=True)
    await installer.install(tar, prefix, tmp_path / "work")
    assert (app / "etc/app.conf").read_bytes() == b"port = 9999  # edited by the user\n"
    assert (app / "profiles/alice/settings.json").exists()
    assert not (app / "bin/old-tool").exists()
    assert sorted(os.listdir(prefix.path / "opt")) == ["app"]


async def test_rollback_after_a_crash_half_way_through_the_swap_puts_the_old_tree_back(
    tmp_path, prefix
):
    app = prefix.path / "opt/app"
    before = tree_state(app)  # the parent's mtime is the snapshot restore's to put back
    os.rename(app, prefix.path / "opt/.app.meisitong-old")
    await replacing().rollback(payload(tmp_path), prefix, tmp_path / "work")
    assert tree_state(app) == before
    assert sorted(os.listdir(prefix.path / "opt")) == ["app"]


async def test_overlay_mode_keeps_preserved_files_the_archive_would_overwrite(tmp_path, prefix):
    app = prefix.path / "opt/app"
    installer = FileTreeInstaller(FileTreeInstall(type="file-tree", root="/opt/app",
                                                  preserve=["etc/app.conf"]))
    await installer.install(payload(tmp_path), prefix, tmp_path / "work")
    assert (app / "bin/app").read_bytes() == b"app 2"
    assert (app / "bin/old-tool").exists()  # overlay: the rest stays
    assert (app / "etc/app.conf").read_bytes() == b"port = 9999  # edited by the user\n"


@pytest.mark.parametrize("bad", ["/etc/passwd", "../etc", "a/../../b", ""])
def test_preserve_paths_must_stay_inside_the_root(bad):
    with pytest.raises(ValueError, match="preserve"):
        ReleaseManifest.model_validate({
            "name": "app", "version": "2.0", "severity": "low", "category": "app",
            "install": {"type": "file-tree", "root": "/opt/app", "preserve": [bad]},
        })
