"""A file-tree snapshot restores a tree byte-identically, however the install changed it."""

import os
import shutil

import pytest

import agent.snapshots.file_tree_snapshot as file_tree_snapshot
from agent.errors import SnapshotError
from agent.snapshots import FileTreeSnapshot, SnapshotManifest, load_manifest
from tests.agent._tree_state import tree_state

T0 = 1_600_000_000_000_000_000


def build_tree(root):
    """Nested dirs, several modes, symlinks (relative, absolute, dangling), a hard link
    pair, an empty private dir, a FIFO; fixed mtimes everywhere."""
    (root / "etc/app/conf.d").mkdir(parents=True)
    (root / "bin").mkdir()
    (root / "var/empty").mkdir(parents=True, mode=0o700)
    (root / "etc/app/app.conf").write_bytes(b"port = 8080\n")
    (root / "etc/app/conf.d/10-site.conf").write_bytes(b"site = a\n")
    os.chmod(root / "etc/app/conf.d/10-site.conf", 0o640)
    (root / "bin/app").write_bytes(b"#!/bin/sh\necho app 1.0\n")
    os.chmod(root / "bin/app", 0o755)
    (root / "bin/secret").write_bytes(os.urandom(3000))
    os.chmod(root / "bin/secret", 0o600)
    os.link(root / "bin/app", root / "bin/app-hardlink")
    (root / "bin/current").symlink_to("app")
    (root / "etc/app/abs-link").symlink_to("/etc/hostname")
    (root / "etc/app/dangling").symlink_to("does-not-exist")
    os.mkfifo(root / "var/fifo", 0o620)
    for offset, path in enumerate(sorted(root.rglob("*"), key=lambda p: -len(p.parts))):
        os.utime(path, ns=(T0, T0 + offset * 1000), follow_symlinks=False)
    os.utime(root, ns=(T0, T0))


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "prefix/opt/app"
    root.mkdir(parents=True)
    build_tree(root)
    return root


@pytest.fixture
def backend():
    return FileTreeSnapshot()


def install_that_changes_everything(root):
    """What a bad install might do: every kind of change, some of them sneaky."""
    conf = root / "etc/app/app.conf"
    st = os.stat(conf)
    conf.write_bytes(b"port = 9090\n")  # same size, mtime put back: only ctime shows it
    os.utime(conf, ns=(st.st_atime_ns, st.st_mtime_ns))
    (root / "bin/app").write_bytes(b"#!/bin/sh\necho app 2.0 (in place, both links)\n")
    (root / "bin/new-tool").write_bytes(b"added")
    (root / "share/doc").mkdir(parents=True)
    (root / "share/doc/README").write_bytes(b"new dir with content")
    (root / "etc/app/conf.d/10-site.conf").unlink()
    os.chmod(root / "bin/secret", 0o644)
    (root / "bin/current").unlink()
    (root / "bin/current").symlink_to("new-tool")
    shutil.rmtree(root / "var/empty")
    (root / "var/empty").write_bytes(b"a file where a dir was")
    (root / "etc/app/dangling").unlink()
    (root / "etc/app/dangling").mkdir()
    (root / "var/fifo").unlink()
    os.chown(root / "etc/app/abs-link", 1234, 1234, follow_symlinks=False)


def test_install_then_restore_is_byte_identical(tmp_path, tree, backend):
    before = tree_state(tree.parent)
    manifest = backend.take([tree], tmp_path / "store")
    install_that_changes_everything(tree)
    assert tree_state(tree.parent) != before
    backend.restore(manifest)
    assert tree_state(tree.parent) == before


def test_restore_twice_gives_the_same_tree(tmp_path, tree, backend):
    before = tree_state(tree.parent)
    manifest = backend.take([tree], tmp_path / "store")
    install_that_changes_everything(tree)
    backend.restore(manifest)
    backend.restore(manifest)
    assert tree_state(tree.parent) == before


@pytest.mark.parametrize("crash_at", [1, 4, 9, 15])
def test_restore_after_a_crash_half_way_gives_the_same_tree(
    tmp_path, tree, backend, monkeypatch, crash_at
):
    before = tree_state(tree.parent)
    manifest = backend.take([tree], tmp_path / "store")
    install_that_changes_everything(tree)
    real_apply = file_tree_snapshot._apply_metadata
    calls = []

    def crashing_apply(path, entry):
        calls.append(path)
        if len(calls) == crash_at:  # often a temp file about to be renamed into place
            raise KeyboardInterrupt("power cut")
        real_apply(path, entry)

    monkeypatch.setattr(file_tree_snapshot, "_apply_metadata", crashing_apply)
    with pytest.raises(KeyboardInterrupt):
        backend.restore(manifest)
    monkeypatch.setattr(file_tree_snapshot, "_apply_metadata", real_apply)
    backend.restore(SnapshotManifest.from_json(manifest.to_json()))
    assert tree_state(tree.parent) == before


def test_untouched_files_are_left_alone_by_restore(tmp_path, tree, backend):
    manifest = backend.take([tree], tmp_path / "store")
    inode = os.stat(tree / "bin/secret").st_ino
    (tree / "bin/new-tool").write_bytes(b"added")
    backend.restore(manifest)
    assert os.stat(tree / "bin/secret").st_ino == inode
    assert not (tree / "bin/new-tool").exists()


def test_absent_paths_and_the_parents_an_install_created_are_removed(tmp_path, tree, backend):
    before = tree_state(tree.parent)
    planned = [tree / "plugins/extra/plugin.so", tree / "etc/app/new.conf"]
    manifest = backend.take(planned, tmp_path / "store")
    assert {(e.path, e.kind) for e in manifest.entries if e.kind == "absent"} == {
        (str(tree / "plugins"), "absent"),
        (str(tree / "etc/app/new.conf"), "absent"),
    }
    (tree / "plugins/extra").mkdir(parents=True)
    (tree / "plugins/extra/plugin.so").write_bytes(b"so")
    (tree / "plugins/unplanned").write_bytes(b"also created")
    (tree / "etc/app/new.conf").write_bytes(b"new")
    backend.restore(manifest)
    assert tree_state(tree.parent) == before  # parents' mtimes included


def test_manifest_round_trips_through_json_and_is_kept_in_the_store(tmp_path, tree, backend):
    store = tmp_path / "store"
    manifest = backend.take([tree], store)
    assert SnapshotManifest.from_json(manifest.to_json()) == manifest
    assert load_manifest(store) == manifest
    with pytest.raises(SnapshotError, match="snapshot manifest"):
        SnapshotManifest.from_json('{"format": 1, "backend": 3}')


def test_copy_method_is_reported(tmp_path, tree, backend):
    manifest = backend.take([tree], tmp_path / "store")
    assert manifest.copy_method in {"reflink", "copy", "mixed"}
    assert manifest.file_count == 5  # the hard link's second name is not stored twice
    assert len(list((tmp_path / "store/blobs").iterdir())) == 4


def test_discard_deletes_the_store_and_is_idempotent(tmp_path, tree, backend):
    store = tmp_path / "store"
    manifest = backend.take([tree], store)
    backend.discard(manifest)
    assert not store.exists()
    backend.discard(manifest)


def test_store_inside_a_snapshotted_path_is_refused(tree, backend):
    with pytest.raises(SnapshotError, match="overlaps"):
        backend.take([tree], tree / "store")


def test_store_that_already_holds_something_is_refused(tmp_path, tree, backend):
    (tmp_path / "store").mkdir()
    (tmp_path / "store/leftover").write_bytes(b"")
    with pytest.raises(SnapshotError, match="already holds"):
        backend.take([tree], tmp_path / "store")


def test_relative_paths_are_refused(tmp_path, backend):
    with pytest.raises(SnapshotError, match="absolute"):
        backend.take([tmp_path / "x", "relative/path"], tmp_path / "store")


def test_restore_refuses_when_a_parent_now_resolves_elsewhere(tmp_path, tree, backend):
    manifest = backend.take([tree / "etc"], tmp_path / "store")
    elsewhere = tmp_path / "elsewhere"
    tree.rename(elsewhere)
    (tmp_path / "decoy").mkdir()
    tree.symlink_to(tmp_path / "decoy")
    with pytest.raises(SnapshotError, match="refusing to restore"):
        backend.restore(manifest)
    assert list((tmp_path / "decoy").iterdir()) == []


def test_a_directory_symlink_is_recorded_with_the_tree_it_points_to(tmp_path, tree, backend):
    (tree.parent / "app-current").symlink_to(tree)
    before = tree_state(tree.parent)
    manifest = backend.take([tree.parent / "app-current"], tmp_path / "store")
    (tree / "etc/app/app.conf").write_bytes(b"changed through the link")
    backend.restore(manifest)
    assert tree_state(tree.parent) == before


def test_restore_with_a_lost_blob_names_the_path(tmp_path, tree, backend):
    manifest = backend.take([tree / "bin/secret"], tmp_path / "store")
    (tree / "bin/secret").write_bytes(b"changed")
    shutil.rmtree(tmp_path / "store/blobs")
    with pytest.raises(SnapshotError, match="bin/secret"):
        backend.restore(manifest)
