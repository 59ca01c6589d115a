"""Install a Debian package with dpkg; revert by reinstalling the version it replaced.

Where the previous version comes from: dpkg cannot rebuild an installed package (that is
dpkg-repack, not part of dpkg), so the agent keeps every .deb it installs in its
package store (`state_dir/packages/NAME/VERSION.deb`, the current and the previous
version of each package). For a version the agent did not install itself it looks in
apt's cache (`/var/cache/apt/archives`). If neither holds the installed version, the
install is refused before anything changes: a package that could not be reverted is
not installed.

No file snapshot is taken for a package: dpkg's database and the kept .deb are the
snapshot, and restoring files behind dpkg's back would leave its database describing
files that are not there. After a revert the installer checks that dpkg reports the
previous version fully installed (or the package absent, if there was none).

On an endpoint (install prefix `/`) dpkg runs as usual. Under a sandbox prefix it runs
with `--root PREFIX --force-script-chrootless`: files and database under the prefix,
maintainer scripts run on the host with DPKG_ROOT set (no shell needed inside it).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
from pathlib import Path

import trio

from agent.atomic_file import write_atomic
from agent.disk_space import SpaceNeed
from agent.errors import InstallError
from agent.install_prefix import InstallPrefix
from agent.installers.base import Installer
from agent.process_group import base_environment, run_program
from agent.wire.release import DpkgInstall

logger = logging.getLogger(__name__)

APT_CACHE = "/var/cache/apt/archives"
PREVIOUS_FILE = "dpkg-previous.json"
TAIL_CHARS = 2000


class DpkgInstaller(Installer):
    """`install.type = "dpkg"`: the payload is a .deb of `install.package`."""

    kind = "dpkg"

    def __init__(self, spec: DpkgInstall, package_store: Path) -> None:
        self.spec = spec
        self.store = Path(package_store)

    # planning (blocking: called in a worker thread) --------------------------------

    def _planned_paths(self, payload: Path, prefix: InstallPrefix) -> list[Path]:
        fields = _deb_fields(payload, "Package", "Version")
        if fields["Package"] != self.spec.package:
            raise InstallError(
                f"{payload}: a package of {fields['Package']!r}, the release says "
                f"{self.spec.package!r}"
            )
        previous = _installed_version_sync(self.spec.package, prefix)
        if previous is not None and self._kept_deb(previous, prefix) is None:
            raise InstallError(
                f"cannot revert {self.spec.package} to the installed version {previous}: "
                f"its .deb is neither in {self.store} nor in {APT_CACHE}; refusing to install"
            )
        return []

    def _space_needed(self, payload: Path, prefix: InstallPrefix, workdir: Path) -> list[SpaceNeed]:
        installed_kib = _deb_fields(payload, "Installed-Size").get("Installed-Size", "0")
        size = int(installed_kib) * 1024 if installed_kib.isdigit() else payload.stat().st_size
        return [
            SpaceNeed(prefix.path, size, "package files"),
            SpaceNeed(self.store, payload.stat().st_size, "kept .deb"),
        ]

    # install and revert -------------------------------------------------------------

    async def _install(self, payload: Path, prefix: InstallPrefix, workdir: Path) -> None:
        record = workdir / PREVIOUS_FILE
        if not record.exists():  # an install run again after a crash keeps the first answer
            previous = await trio.to_thread.run_sync(
                _installed_version_sync, self.spec.package, prefix
            )
            kept = self._kept_deb(previous, prefix) if previous else None
            write_atomic(record, json.dumps(
                {"version": previous, "deb": str(kept) if kept else None}
            ).encode(), mode=0o600)
        await self._dpkg(prefix, workdir, "install", "--install", str(payload))
        version = (await trio.to_thread.run_sync(_deb_fields, payload, "Version"))["Version"]
        await trio.to_thread.run_sync(self._keep, payload, version, json.loads(record.read_text()))

    async def _rollback(self, payload: Path, prefix: InstallPrefix, workdir: Path) -> None:
        record = workdir / PREVIOUS_FILE
        if not record.exists():
            logger.info("dpkg rollback: the install never started; nothing to undo")
            return
        previous = json.loads(record.read_text())
        if previous["version"] is None:
            await self._dpkg(prefix, workdir, "rollback", "--purge", self.spec.package)
        else:
            await self._dpkg(prefix, workdir, "rollback", "--install", previous["deb"])

    async def _verify_reverted(self, prefix: InstallPrefix, workdir: Path) -> str:
        record = workdir / PREVIOUS_FILE
        if not record.exists():
            return "dpkg: the install never started"
        want = json.loads(record.read_text())["version"]
        have, status = await trio.to_thread.run_sync(_query_sync, self.spec.package, prefix)
        if want is None:
            if have is not None and status.startswith("i"):
                raise InstallError(f"{self.spec.package} {have} is still installed ({status})")
            return f"dpkg: {self.spec.package} absent again"
        if have != want or status != "ii":
            raise InstallError(
                f"dpkg reports {self.spec.package} {have or 'absent'} ({status or 'no status'}), "
                f"want {want} fully installed"
            )
        return f"dpkg: {self.spec.package} {want} installed again"

    # helpers ------------------------------------------------------------------------

    def _kept_deb(self, version: str, prefix: InstallPrefix) -> Path | None:
        kept = self.store / self.spec.package / f"{_file_version(version)}.deb"
        if kept.is_file():
            return kept
        cache = prefix.place(APT_CACHE)
        matches = sorted(cache.glob(f"{self.spec.package}_{_file_version(version)}_*.deb"))
        return matches[0] if matches else None

    def _keep(self, payload: Path, version: str, previous: dict[str, str | None]) -> None:
        """Keep the new .deb (the next install's way back) and the previous one (this
        install's); drop older versions."""
        directory = self.store / self.spec.package
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        kept = directory / f"{_file_version(version)}.deb"
        if not kept.exists():
            partial = directory / f".{kept.name}.partial"
            shutil.copyfile(payload, partial)
            os.replace(partial, kept)
        wanted = {kept.name}
        if previous.get("version"):
            wanted.add(f"{_file_version(str(previous['version']))}.deb")
        for other in directory.iterdir():
            if other.name not in wanted:
                other.unlink()

    async def _dpkg(self, prefix: InstallPrefix, workdir: Path, role: str, *args: str) -> None:
        argv = ["dpkg", *_root_options(prefix), *args]
        log_path = workdir / f"dpkg-{role}.log"
        workdir.mkdir(parents=True, exist_ok=True)
        with open(log_path, "wb") as log:
            try:
                with trio.fail_after(self.spec.timeout):
                    done = await run_program(argv, env=_environment(), output=log)
            except trio.TooSlowError:
                raise InstallError(
                    f"dpkg {role} timed out after {self.spec.timeout:g} s{_tail(log_path)}"
                ) from None
            except OSError as exc:
                raise InstallError(f"dpkg could not start: {exc}") from exc
        if done.returncode != 0:
            raise InstallError(f"dpkg {role} exited with code {done.returncode}{_tail(log_path)}")


def _root_options(prefix: InstallPrefix) -> list[str]:
    if prefix.path == Path("/"):
        return []
    return [f"--root={prefix.path}", "--force-script-chrootless"]


def _environment() -> dict[str, str]:
    return base_environment() | {"DEBIAN_FRONTEND": "noninteractive"}


def _deb_fields(payload: Path, *names: str) -> dict[str, str]:
    try:
        done = subprocess.run(
            ["dpkg-deb", "--field", str(payload), *names],
            capture_output=True, text=True, timeout=60, check=False, env=_environment(),
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InstallError(f"cannot read {payload} with dpkg-deb: {exc}") from None
    if done.returncode != 0:
        raise InstallError(f"{payload} is not a Debian package: {done.stderr.strip()[-300:]}")
    if len(names) == 1:
        return {names[0]: done.stdout.strip()}
    fields: dict[str, str] = {}
    for line in done.stdout.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    missing = [name for name in names if name not in fields and name != "Installed-Size"]
    if missing:
        raise InstallError(f"{payload}: control file lacks {', '.join(missing)}")
    return fields


def _query_sync(package: str, prefix: InstallPrefix) -> tuple[str | None, str]:
    """(version, two-letter status like `ii` / `iF`), (None, "") if dpkg knows nothing."""
    argv = ["dpkg-query", *(_root_options(prefix)[:1]), "-W",
            "-f=${Version}\t${db:Status-Abbrev}", package]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False,
                          env=_environment())
    if done.returncode != 0 or not done.stdout.strip():
        return None, ""
    version, _, status = done.stdout.partition("\t")
    status = status.strip()
    if not version or status.startswith(("un", "pn")):
        return None, status
    return version, status


def _installed_version_sync(package: str, prefix: InstallPrefix) -> str | None:
    version, status = _query_sync(package, prefix)
    # Second letter: the current state; n(ot installed) and c(onfig files only) hold no version.
    return version if len(status) >= 2 and status[1] not in ("n", "c") else None


def _file_version(version: str) -> str:
    """How Debian names a version in a .deb file name (the epoch's colon is %3a)."""
    return version.replace(":", "%3a")


def _tail(log_path: Path) -> str:
    try:
        text = log_path.read_text(errors="replace")
    except OSError:
        return ""
    return f"; output:\n{text[-TAIL_CHARS:].strip()}" if text.strip() else " (no output)"
