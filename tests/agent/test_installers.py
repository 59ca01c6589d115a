"""Installers apply payloads under the install prefix and plan exactly what to snapshot."""

import os
import time

import pytest

from agent.errors import InstallError, UnsafeArchiveError, WireFormatError
from agent.install_prefix import InstallPrefix
from agent.installers import CommandPairInstaller, FileTreeInstaller, installer_for
from agent.snapshots import FileTreeSnapshot
from agent.wire.release import CommandPairInstall, FileTreeInstall
from tests.agent._tar_fixtures import build_tar, directory, file, symlink
from tests.agent._tree_state import tree_state


@pytest.fixture
def prefix(tmp_path):
    root = tmp_path / "prefix"
    (root / "opt/app/bin").mkdir(parents=True)
    (root / "opt/app/etc").mkdir()
    (root / "opt/app/bin/app").write_bytes(b"app 1.0")
    (root / "opt/app/bin/keep").write_bytes(b"not in the payload")
    (root / "opt/app/etc/app.conf").write_bytes(b"port = 8080\n")
    (root / "opt/app/etc/app.conf").chmod(0o640)
    (root / "opt/other").mkdir()
    for path in sorted(root.rglob("*"), key=lambda p: -len(p.parts)):
        os.utime(path, (1_600_000_000, 1_600_000_000))
    return InstallPrefix(root)


def workdir_for(tmp_path):
    workdir = tmp_path / "work"
    workdir.mkdir(exist_ok=True)
    return workdir


# -- the install prefix ---------------------------------------------------------------

def test_prefix_places_endpoint_paths_beneath_it_and_refuses_dotdot(tmp_path):
    prefix = InstallPrefix(tmp_path)
    assert prefix.place("/opt/app/./bin") == tmp_path / "opt/app/bin"
    assert InstallPrefix("/").place("/opt/app") == InstallPrefix("/").path / "opt/app"
    with pytest.raises(WireFormatError, match=r"'\.\.'"):
        prefix.place("/opt/../etc/shadow")
    with pytest.raises(WireFormatError, match="absolute"):
        prefix.place("opt/app")


def test_prefix_expands_root_in_argv_without_trailing_slash(tmp_path):
    assert InstallPrefix(tmp_path).expand_argv(["cat", "{root}/etc/x"]) == [
        "cat", f"{tmp_path}/etc/x",
    ]
    assert InstallPrefix("/").expand_argv(["cat", "{root}/etc/x"]) == ["cat", "/etc/x"]


# -- file tree --------------------------------------------------------------------------

def file_tree_payload(tmp_path):
    return build_tar(
        tmp_path / "payload.tar",
        directory("./"),
        directory("bin"),
        file("bin/app", b"app 2.0", 0o755),          # replaces
        file("bin/new-tool", b"new", 0o755),          # adds
        directory("share/doc", 0o755),                # creates a dir (and its parent)
        file("share/doc/README", b"read me"),
        symlink("bin/current", "app"),
        directory("var/cache", 0o700),                # an empty new dir
    )


def test_file_tree_plans_members_not_the_whole_root(tmp_path, prefix):
    installer = FileTreeInstaller(FileTreeInstall(type="file-tree", root="/opt/app"))
    planned = installer.planned_paths(file_tree_payload(tmp_path), prefix)
    app = prefix.path / "opt/app"
    assert sorted(planned) == sorted(
        app / name
        for name in ["bin/app", "bin/new-tool", "share/doc/README", "bin/current", "var/cache"]
    )


async def test_install_then_restore_is_byte_identical(tmp_path, prefix):
    before = tree_state(prefix.path)
    installer = installer_for(FileTreeInstall(type="file-tree", root="/opt/app"))
    payload = file_tree_payload(tmp_path)
    snapshots = FileTreeSnapshot()
    manifest = snapshots.take(installer.planned_paths(payload, prefix), tmp_path / "store")
    await installer.install(payload, prefix, workdir_for(tmp_path))
    app = prefix.path / "opt/app"
    assert (app / "bin/app").read_bytes() == b"app 2.0"
    assert (app / "share/doc/README").read_bytes() == b"read me"
    assert (app / "bin/keep").read_bytes() == b"not in the payload"
    await installer.rollback(payload, prefix, workdir_for(tmp_path))
    snapshots.restore(manifest)
    assert tree_state(prefix.path) == before
    # Only what the payload touches was copied, not the rest of the root.
    assert manifest.stored_bytes == len(b"app 1.0")


async def test_file_tree_install_into_a_missing_root_is_reverted_by_removing_it(
    tmp_path, prefix
):
    before = tree_state(prefix.path)
    installer = FileTreeInstaller(FileTreeInstall(type="file-tree", root="/srv/new/app"))
    payload = build_tar(tmp_path / "p.tar", file("x"))
    manifest = FileTreeSnapshot().take(installer.planned_paths(payload, prefix), tmp_path / "s")
    await installer.install(payload, prefix, workdir_for(tmp_path))
    assert (prefix.path / "srv/new/app/x").is_file()
    FileTreeSnapshot().restore(manifest)
    assert tree_state(prefix.path) == before


def test_file_tree_unsafe_payload_is_refused_while_planning(tmp_path, prefix):
    installer = FileTreeInstaller(FileTreeInstall(type="file-tree", root="/opt/app"))
    payload = build_tar(tmp_path / "p.tar", symlink("bin/sh", "/bin/sh"))
    with pytest.raises(UnsafeArchiveError, match="bin/sh"):
        installer.planned_paths(payload, prefix)


# -- command pair -----------------------------------------------------------------------

INSTALL_SH = b"""#!/bin/sh
set -e
echo "installing into $MEISITONG_ROOT"
printf '%s\\n' "$MEISITONG_PAYLOAD_DIR" "$(pwd)" > "$MEISITONG_ROOT/opt/app/env.txt"
printf 'app 2.0' > "$MEISITONG_ROOT/opt/app/bin/app"
mkdir -p "$MEISITONG_ROOT/opt/app/plugins"
echo state > "$MEISITONG_PAYLOAD_DIR/left-by-install"
"""
ROLLBACK_SH = b"""#!/bin/sh
# A sloppy rollback: the snapshot restore has to finish the job.
test -f "$MEISITONG_PAYLOAD_DIR/left-by-install" && echo saw-install-state > "$MEISITONG_ROOT/rb"
printf 'app 1.0' > "$MEISITONG_ROOT/opt/app/bin/app"
"""


def command_pair(tmp_path, install=INSTALL_SH, rollback=ROLLBACK_SH, timeout=30.0):
    payload = build_tar(
        tmp_path / "payload.tar",
        file("install.sh", install, 0o755),
        file("rollback.sh", rollback, 0o755),
        file("README", b"not a program", 0o644),
    )
    spec = CommandPairInstall(
        type="command-pair", install="install.sh", rollback="rollback.sh",
        paths=["/opt/app", "/rb"], timeout=timeout,
    )
    return CommandPairInstaller(spec), payload


def test_command_pair_plans_the_spec_paths_under_the_prefix(tmp_path, prefix):
    installer, payload = command_pair(tmp_path)
    assert installer.planned_paths(payload, prefix) == [
        prefix.path / "opt/app", prefix.path / "rb",
    ]


async def test_command_pair_install_then_rollback_and_restore_is_byte_identical(
    tmp_path, prefix
):
    before = tree_state(prefix.path)
    installer, payload = command_pair(tmp_path)
    workdir = workdir_for(tmp_path)
    snapshots = FileTreeSnapshot()
    manifest = snapshots.take(installer.planned_paths(payload, prefix), tmp_path / "store")
    await installer.install(payload, prefix, workdir)
    app = prefix.path / "opt/app"
    assert (app / "bin/app").read_bytes() == b"app 2.0"
    payload_dir = workdir / "payload"
    assert (app / "env.txt").read_text().splitlines() == [str(payload_dir)] * 2
    assert "installing into" in (workdir / "install.log").read_text()
    await installer.rollback(payload, prefix, workdir)
    assert (prefix.path / "rb").read_text() == "saw-install-state\n"
    snapshots.restore(manifest)
    assert tree_state(prefix.path) == before


async def test_command_pair_rollback_after_a_crash_extracts_the_payload_again(
    tmp_path, prefix
):
    installer, payload = command_pair(tmp_path)
    workdir = workdir_for(tmp_path)
    await installer.rollback(payload, prefix, workdir)
    assert (prefix.path / "opt/app/bin/app").read_bytes() == b"app 1.0"
    assert not (prefix.path / "rb").exists()


async def test_command_pair_install_failure_reports_exit_code_and_stderr(tmp_path, prefix):
    failing = b"""#!/bin/sh
for i in $(seq 1 30); do echo "progress line $i"; done
echo "E: cannot write /opt/app/lib: disk full" >&2
exit 3
"""
    installer, payload = command_pair(tmp_path, install=failing)
    with pytest.raises(InstallError) as caught:
        await installer.install(payload, prefix, workdir_for(tmp_path))
    message = str(caught.value)
    assert "install program install.sh exited with code 3" in message
    assert "E: cannot write /opt/app/lib: disk full" in message
    assert "progress line 30" in message
    assert "progress line 5\n" not in message  # only the tail is quoted


async def test_command_pair_timeout_ends_the_whole_process_group(tmp_path, prefix):
    hanging = b"""#!/bin/sh
sleep 300 &
echo $! > "$MEISITONG_ROOT/child.pid"
echo "waiting forever"
wait
"""
    installer, payload = command_pair(tmp_path, install=hanging, timeout=0.5)
    started = time.monotonic()
    with pytest.raises(InstallError, match=r"install program install.sh timed out after 0\.5 s"):
        await installer.install(payload, prefix, workdir_for(tmp_path))
    assert time.monotonic() - started < 5
    child = int((prefix.path / "child.pid").read_text())
    deadline = time.monotonic() + 5
    while is_running(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not is_running(child), "background child of the script survived"


def is_running(pid):
    """Alive and not a zombie (the container's init may take a while to reap it)."""
    try:
        with open(f"/proc/{pid}/stat") as stat_file:
            return stat_file.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


@pytest.mark.parametrize(
    ("install", "mode", "message"),
    [
        ("missing.sh", 0o755, "is not in the payload"),
        ("README", 0o644, "is not executable"),
        ("bin", 0o755, "is not a regular file"),
    ],
)
async def test_command_pair_program_must_be_an_executable_file_in_the_payload(
    tmp_path, prefix, install, mode, message
):
    payload = build_tar(
        tmp_path / "p.tar", file("README", b"text", mode), directory("bin"),
        file("rollback.sh", ROLLBACK_SH, 0o755),
    )
    spec = CommandPairInstall(
        type="command-pair", install=install, rollback="rollback.sh", paths=["/opt/app"]
    )
    with pytest.raises(InstallError, match=message):
        await CommandPairInstaller(spec).install(payload, prefix, workdir_for(tmp_path))


async def test_command_pair_program_symlinked_outside_the_payload_is_refused(tmp_path, prefix):
    payload = build_tar(
        tmp_path / "p.tar", directory("bin"), symlink("bin/install", "../../outside"),
        file("rollback.sh", ROLLBACK_SH, 0o755),
    )
    spec = CommandPairInstall(
        type="command-pair", install="bin/install", rollback="rollback.sh", paths=[]
    )
    with pytest.raises(UnsafeArchiveError, match="bin/install"):
        await CommandPairInstaller(spec).install(payload, prefix, workdir_for(tmp_path))
