"""The Debian package installer, for real: packages built by dpkg-deb in the test,
installed by dpkg into a sandbox root (`--root`, maintainer scripts run chrootless)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from agent.errors import InstallError
from agent.install_prefix import InstallPrefix
from agent.installers import installer_for
from agent.wire.release import DpkgInstall

pytestmark = pytest.mark.skipif(
    shutil.which("dpkg") is None or shutil.which("dpkg-deb") is None,
    reason="dpkg and dpkg-deb are needed (Debian's dpkg package)",
)

SPEC = DpkgInstall(type="dpkg", package="demo-pkg", timeout=60)


def build_deb(directory, version, postinst=None, package="demo-pkg"):
    tree = directory / f"{package}-{version}"
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "opt/demo").mkdir(parents=True)
    (tree / "opt/demo/VERSION").write_text(version)
    (tree / "DEBIAN/control").write_text(
        f"Package: {package}\nVersion: {version}\nArchitecture: all\n"
        "Maintainer: Tests <tests@example.invalid>\nDescription: demo package\n"
    )
    if postinst is not None:
        (tree / "DEBIAN/postinst").write_text(postinst)
        (tree / "DEBIAN/postinst").chmod(0o755)
    deb = directory / f"{package}_{version}_all.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-b", str(tree), str(deb)],
                   check=True, capture_output=True)
    return deb


@pytest.fixture
def sandbox(tmp_path):
    root = tmp_path / "root"
    for sub in ("info", "updates", "triggers"):
        (root / "var/lib/dpkg" / sub).mkdir(parents=True)
    (root / "var/lib/dpkg/status").write_text("")
    return InstallPrefix(root)


def installed(prefix):
    done = subprocess.run(["dpkg-query", f"--root={prefix.path}", "-W",
                           "-f=${Version} ${db:Status-Abbrev}", "demo-pkg"],
                          capture_output=True, text=True, check=False)
    return done.stdout.strip() if done.returncode == 0 else None


async def install(prefix, tmp_path, deb, name):
    installer = installer_for(SPEC, tmp_path / "packages")
    workdir = tmp_path / "work" / name
    workdir.mkdir(parents=True)
    assert installer.planned_paths(deb, prefix) == []
    await installer.install(deb, prefix, workdir)
    return installer, workdir


async def test_first_install_is_reverted_by_purging(sandbox, tmp_path):
    deb = build_deb(tmp_path, "1.0")
    installer, workdir = await install(sandbox, tmp_path, deb, "one")
    assert installed(sandbox) == "1.0 ii"
    await installer.rollback(deb, sandbox, workdir)
    assert installed(sandbox) in (None, "")
    assert "absent again" in await installer.verify_reverted(sandbox, workdir)
    assert not (sandbox.path / "opt/demo/VERSION").exists()


async def test_failing_postinst_is_reverted_to_the_previously_installed_version(
    sandbox, tmp_path
):
    await install(sandbox, tmp_path, build_deb(tmp_path, "1.0"), "one")
    broken = build_deb(tmp_path, "2.0", postinst="#!/bin/sh\necho 'cannot migrate' >&2\nexit 1\n")
    installer = installer_for(SPEC, tmp_path / "packages")
    workdir = tmp_path / "work/two"
    workdir.mkdir(parents=True)
    installer.planned_paths(broken, sandbox)
    with pytest.raises(InstallError, match="cannot migrate"):
        await installer.install(broken, sandbox, workdir)
    assert installed(sandbox) == "2.0 iF"  # half-configured: what dpkg leaves
    await installer.rollback(broken, sandbox, workdir)
    assert installed(sandbox) == "1.0 ii"
    assert (sandbox.path / "opt/demo/VERSION").read_text() == "1.0"
    assert "1.0 installed again" in await installer.verify_reverted(sandbox, workdir)
    await installer.rollback(broken, sandbox, workdir)  # again after a crash: same end
    assert installed(sandbox) == "1.0 ii"


async def test_upgrade_keeps_the_previous_deb_and_drops_older_ones(sandbox, tmp_path):
    await install(sandbox, tmp_path, build_deb(tmp_path, "1.0"), "one")
    await install(sandbox, tmp_path, build_deb(tmp_path, "2.0"), "two")
    await install(sandbox, tmp_path, build_deb(tmp_path, "3.0"), "three")
    kept = sorted(p.name for p in (tmp_path / "packages/demo-pkg").iterdir())
    assert kept == ["2.0.deb", "3.0.deb"]


async def test_a_version_the_agent_cannot_go_back_to_is_refused_before_anything_changes(
    sandbox, tmp_path
):
    (tmp_path / "elsewhere").mkdir()
    outside = build_deb(tmp_path / "elsewhere", "1.0")
    subprocess.run(["dpkg", f"--root={sandbox.path}", "--force-script-chrootless", "-i",
                    str(outside)], check=True, capture_output=True)
    installer = installer_for(SPEC, tmp_path / "packages")
    new = build_deb(tmp_path, "2.0")
    with pytest.raises(InstallError, match="cannot revert demo-pkg to the installed version 1.0"):
        installer.planned_paths(new, sandbox)
    # ... unless apt's cache holds it.
    cache = sandbox.path / "var/cache/apt/archives"
    cache.mkdir(parents=True)
    shutil.copy(outside, cache / "demo-pkg_1.0_all.deb")
    assert installer.planned_paths(new, sandbox) == []


def test_a_package_of_another_name_is_refused(sandbox, tmp_path):
    installer = installer_for(SPEC, tmp_path / "packages")
    with pytest.raises(InstallError, match="'other-pkg'"):
        installer.planned_paths(build_deb(tmp_path, "1.0", package="other-pkg"), sandbox)
