"""Faults during a deployment, with a real hub and a real agent daemon in this process
(driven one cycle at a time): each ends in a revert with a clear reason, or in
not-ready with nothing changed, or in revert-failed that blocks installs until an admin
clears it. Disk-full and no-room cases use small tmpfs mounts made by the test.
"""

from __future__ import annotations

import logging
import shutil
import subprocess

import pytest
import trio
from click.testing import CliRunner

from agent.cli import main as agent_cli
from agent.lifecycle import State
from agent.reboot import RebootAdapter
from agent.snapshots import FileTreeSnapshot
from tests.agent._mounts import loop_filesystem, tmpfs
from tests.agent._tree_state import tree_state
from tests.agent.test_dpkg_installer import build_deb
from tests.e2e._crash_harness import command_check, file_hash_check, publish, write_tar
from tests.fleet import start_agent, start_hub

FILE_TREE = '[install]\ntype = "file-tree"\nroot = "/opt/app"\n'


@pytest.fixture
async def hub(tmp_path, nursery):
    return await start_hub(tmp_path, nursery)


@pytest.fixture
async def agent(hub, nursery):
    daemon, prefix = await start_agent(hub, nursery, "a1", "127.0.0.2")
    app = prefix / "opt/app"
    app.mkdir(parents=True)
    (app / "VERSION").write_bytes(b"1.0.0")
    (app / "app.conf").write_bytes(b"port = 8080\n")
    return daemon, prefix


def release(hub, name, version, files, manifest):
    payload = write_tar(hub.workdir / f"{name}-{version}.tar",
                        {path: (data, 0o755) for path, data in files.items()})
    target = publish(hub, name, version, payload, manifest)
    hub.rollout(target)
    return target


def only_deployment(daemon, target):
    deployment = daemon.journal.get(target)
    assert deployment is not None
    return deployment


async def delivered(daemon, hub):
    assert await daemon.deliver_results() == 0
    return [r for r in hub.results() if r["device_id"] == daemon.identity.device_id]


async def test_install_that_fills_the_disk_is_reverted_with_the_reason(hub, agent, tmp_path):
    daemon, prefix = agent
    daemon.ctx.free_space_reserve = 0  # bytes are plenty; it is the inodes that run out
    with tmpfs(prefix / "opt/app", "size=4m,nr_inodes=16"):
        (prefix / "opt/app/VERSION").write_bytes(b"1.0.0")
        before = tree_state(prefix)
        files = {f"lib/module{i:03d}.py": b"x = 1\n" for i in range(40)}
        target = release(hub, "app", "2.0.0", {"VERSION": b"2.0.0", **files}, FILE_TREE)
        await daemon.cycle()
        deployment = only_deployment(daemon, target)
        assert deployment.state is State.REVERTED
        assert "No space left on device" in deployment.reason
        assert tree_state(prefix) == before
        [result] = await delivered(daemon, hub)
        assert result["outcome"] == "reverted" and "No space left" in result["reason"]


async def test_payload_that_vanishes_before_extraction_is_reverted_with_the_reason(hub, agent):
    daemon, prefix = agent
    before = tree_state(prefix)
    downloads = daemon.state.downloads

    class PayloadVanishesAfterSnapshot(FileTreeSnapshot):
        """Stands in for a cleaner (or a failing disk) removing the downloaded payload
        between the snapshot and the install."""

        def _take(self, paths, store):
            manifest = super()._take(paths, store)
            for payload in downloads.rglob("*.tar"):
                payload.unlink()
            return manifest

    daemon.ctx.snapshots = PayloadVanishesAfterSnapshot()
    target = release(hub, "app", "2.0.0", {"VERSION": b"2.0.0"}, FILE_TREE)
    await daemon.cycle()
    deployment = only_deployment(daemon, target)
    assert deployment.state is State.REVERTED
    assert "vanished" in deployment.reason
    assert tree_state(prefix) == before
    [result] = await delivered(daemon, hub)
    assert result["outcome"] == "reverted" and "vanished" in result["reason"]


async def test_hanging_health_check_is_cut_by_its_timeout_and_reverted(hub, agent):
    daemon, prefix = agent
    before = tree_state(prefix)
    target = release(
        hub, "app", "2.0.0", {"VERSION": b"2.0.0"},
        FILE_TREE + command_check(["sleep", "3600"], retries=1, timeout=0.5)
        + "[[revert_health]]\n" + file_hash_check("/opt/app/VERSION", b"1.0.0").split("\n", 1)[1],
    )
    with trio.fail_after(30):
        await daemon.cycle()
    deployment = only_deployment(daemon, target)
    assert deployment.state is State.REVERTED
    assert "timed out after 0.5 s after 2 attempts" in deployment.reason
    assert "revert health: 1/1 checks passed" in deployment.reason
    assert tree_state(prefix) == before
    [result] = await delivered(daemon, hub)
    assert "timed out" in result["reason"]


async def test_not_enough_room_is_not_ready_with_nothing_changed(hub, agent):
    daemon, prefix = agent
    daemon.ctx.free_space_reserve = 0
    with tmpfs(prefix / "opt/app", "size=1m"):
        (prefix / "opt/app/VERSION").write_bytes(b"1.0.0")
        before = tree_state(prefix)
        target = release(hub, "app", "2.0.0",
                         {"VERSION": b"2.0.0", "big.bin": b"\0" * (2 << 20)}, FILE_TREE)
        await daemon.cycle()
        await daemon.cycle()  # still no room: no second record
        deployment = only_deployment(daemon, target)
        assert deployment.state is State.VERIFIED
        assert "not enough free space" in deployment.reason
        assert tree_state(prefix) == before
        assert not any(daemon.state.snapshots.iterdir())
        [result] = await delivered(daemon, hub)
        assert result["outcome"] == "not-ready" and "opt/app" in result["reason"]


async def test_failed_revert_check_ends_in_revert_failed_and_blocks_until_cleared(
    hub, agent, caplog
):
    daemon, prefix = agent
    bad = release(
        hub, "app", "2.0.0", {"VERSION": b"2.0.0"},
        FILE_TREE + file_hash_check("/opt/app/VERSION", b"never")
        + "[[revert_health]]\n" + file_hash_check("/opt/app/VERSION", b"also never")
        .split("\n", 1)[1],
    )
    with caplog.at_level(logging.ERROR):
        await daemon.cycle()
    deployment = only_deployment(daemon, bad)
    assert deployment.state is State.REVERT_FAILED
    assert "health after revert failed" in deployment.reason
    assert any("REVERT FAILED" in r.message and r.levelno == logging.ERROR
               for r in caplog.records)
    [result] = await delivered(daemon, hub)
    assert result["outcome"] == "revert-failed"
    assert "revert of" in daemon.journal.status()["alert"][0]

    good = release(hub, "app", "2.0.1", {"VERSION": b"2.0.1"}, FILE_TREE)
    await daemon.cycle()
    assert only_deployment(daemon, good).state is State.VERIFIED  # downloaded, not installed
    assert (prefix / "opt/app/VERSION").read_bytes() == b"1.0.0"

    config = hub.workdir / "a1" / "agent.toml"
    cleared = await trio.to_thread.run_sync(
        lambda: CliRunner().invoke(agent_cli, ["clear", "--config", str(config)])
    )
    assert cleared.exit_code == 0, cleared.output
    assert "installs allowed again" in cleared.output
    assert not any(daemon.state.snapshots.iterdir())
    await daemon.cycle()
    assert only_deployment(daemon, good).state is State.COMMITTED
    assert (prefix / "opt/app/VERSION").read_bytes() == b"2.0.1"


class SimulatedReboot(RebootAdapter):
    """In-process stand-in for a reboot: a new boot id and a return (the real adapters
    end the process; tests/e2e/test_reboot_recovery.py uses the one that does)."""

    name = "simulated"

    def __init__(self):
        self.boots = 0

    def boot_id(self):
        return f"boot {self.boots}"

    async def _reboot(self):
        self.boots += 1


class RebootWhenAllowed:
    def __init__(self):
        self.allow_reboot = trio.Event()
        self.asked = trio.Event()

    async def wait_for_install(self, release, info):
        return None

    async def wait_for_reboot(self, release, info):
        self.asked.set()
        await self.allow_reboot.wait()

    async def finished(self, release):
        return None


async def test_reboot_waits_for_the_gate_and_the_checks_run_after_it(hub, agent):
    daemon, prefix = agent
    reboot, gate = SimulatedReboot(), RebootWhenAllowed()
    daemon.ctx.reboot, daemon.ctx.gate = reboot, gate
    target = release(hub, "app", "2.0.0", {"VERSION": b"2.0.0"},
                     'reboot = true\n' + FILE_TREE + file_hash_check("/opt/app/VERSION",
                                                                     b"2.0.0"))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(daemon.cycle)
        with trio.fail_after(30):
            await gate.asked.wait()
        assert only_deployment(daemon, target).state is State.REBOOTING
        assert reboot.boots == 0
        gate.allow_reboot.set()
    assert reboot.boots == 1
    await daemon.cycle()  # "after the reboot": a new boot id
    deployment = only_deployment(daemon, target)
    assert deployment.state is State.COMMITTED
    states = [to for _from, to, _reason, _at in daemon.journal.transitions(target)]
    assert states[-3:] == ["rebooting", "checking", "committed"]


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb (Debian's dpkg)")
async def test_package_whose_postinst_fails_is_reverted_to_the_previous_version(
    hub, agent, tmp_path
):
    daemon, prefix = agent
    for sub in ("info", "updates", "triggers"):
        (prefix / "var/lib/dpkg" / sub).mkdir(parents=True)
    (prefix / "var/lib/dpkg/status").write_text("")
    spec = '[install]\ntype = "dpkg"\npackage = "demo-pkg"\ntimeout = 60\n'
    first = publish(hub, "demo-pkg", "1.0", build_deb(tmp_path, "1.0"),
                    spec + file_hash_check("/opt/demo/VERSION", b"1.0"))
    hub.rollout(first)
    await daemon.cycle()
    assert only_deployment(daemon, first).state is State.COMMITTED
    broken = build_deb(tmp_path, "2.0", postinst="#!/bin/sh\necho 'schema migration failed' >&2\n"
                       "exit 1\n")
    second = publish(hub, "demo-pkg", "2.0", broken, spec)
    hub.rollout(second)
    await daemon.cycle()
    deployment = only_deployment(daemon, second)
    assert deployment.state is State.REVERTED
    assert "schema migration failed" in deployment.reason
    assert "demo-pkg 1.0 installed again" in deployment.reason
    assert (prefix / "opt/demo/VERSION").read_text() == "1.0"
    outcomes = sorted(r["outcome"] for r in await delivered(daemon, hub))
    assert outcomes == ["installed", "reverted"]


async def test_install_root_on_a_btrfs_subvolume_is_reverted_from_a_btrfs_snapshot(
    hub, agent, tmp_path
):
    daemon, prefix = agent
    with loop_filesystem(tmp_path / "btrfs.img", prefix / "srv", "btrfs", "300M") as srv:
        subprocess.run(["btrfs", "subvolume", "create", str(srv / "app")], check=True,
                       capture_output=True)
        (srv / "app/VERSION").write_bytes(b"1.0.0")
        before = tree_state(srv / "app")
        target = release(hub, "app", "2.0.0", {"VERSION": b"2.0.0", "new": b"x"},
                         '[install]\ntype = "file-tree"\nroot = "/srv/app"\n'
                         + file_hash_check("/srv/app/VERSION", b"9.9.9"))
        await daemon.cycle()
        deployment = only_deployment(daemon, target)
        assert deployment.state is State.REVERTED
        assert '"backend":"btrfs"' in deployment.detail.snapshot
        assert "restored subvolume matches its snapshot" in deployment.reason
        assert tree_state(srv / "app") == before
        assert sorted(p.name for p in srv.iterdir()) == ["app"]  # snapshot pruned


async def test_an_os_error_while_snapshotting_fails_the_deployment_and_the_daemon_goes_on(
    hub, agent
):
    """On the device, `lib` is a symlink to itself where the release puts a directory:
    measuring what the snapshot will copy hits ELOOP, an OSError no snapshot backend
    wraps. Nothing was changed, so the deployment fails instead of taking the snapshot
    again at every cycle."""
    daemon, prefix = agent
    (prefix / "opt/app/lib").symlink_to("lib")
    before = tree_state(prefix)
    target = release(hub, "app", "2.0.0", {"VERSION": b"2.0.0", "lib/mod.py": b"x"}, FILE_TREE)
    await daemon.cycle()
    deployment = only_deployment(daemon, target)
    assert deployment.state is State.FAILED
    assert "nothing changed" in deployment.reason and "symbolic links" in deployment.reason
    assert tree_state(prefix) == before
    [result] = await delivered(daemon, hub)
    assert result["outcome"] == "failed"


async def test_an_os_error_in_the_rollback_still_restores_the_snapshot(hub, agent, caplog):
    """The file-tree rollback removes its staging directory beside the root; here that is
    a mount point (EBUSY), an OSError the installer does not wrap. The snapshot restore
    still runs, the revert is verified, and the daemon goes on."""
    daemon, prefix = agent
    before = tree_state(prefix / "opt/app")
    with tmpfs(prefix / "opt/.app.meisitong-new", "size=1m"):
        target = release(hub, "app", "2.0.0", {"VERSION": b"2.0.0"},
                         FILE_TREE + file_hash_check("/opt/app/VERSION", b"never"))
        with caplog.at_level(logging.WARNING):
            await daemon.cycle()
        deployment = only_deployment(daemon, target)
        assert deployment.state is State.REVERTED, deployment.reason
        assert any("rollback" in r.message and "busy" in r.getMessage()
                   for r in caplog.records)
        assert tree_state(prefix / "opt/app") == before
    [result] = await delivered(daemon, hub)
    assert result["outcome"] == "reverted"

