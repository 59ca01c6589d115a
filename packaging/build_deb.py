"""Build the two Debian packages, meisitong-hub and meisitong-agent, with dpkg-deb.

Each carries the application in a private virtualenv at its final path
(/opt/meisitong/hub, /opt/meisitong/agent), so upgrading a Debian Python library never
changes what the daemon runs. The venv is built inside a staging root and then made to
work from its installed path: the shebangs of its scripts and its pyvenv.cfg are
rewritten from the staging path to the final one, and the bytecode is compiled with the
final path recorded (compileall -s/-p) and hash-based invalidation, so the .pyc files
are byte-identical from build to build and never rewritten at run time (the units make
/opt read-only anyway). The venv's interpreter is a symlink to Debian's
/usr/bin/python3.11, not a copy (--copies): a copy would go stale the day Debian fixes
a bug in python3.11 while the standard library under it moves on. Compiled extension
modules are cp311, hence `Depends: python3.11`.

Reproducible enough: SOURCE_DATE_EPOCH (the last commit's time unless set) dates the
wheel and the archives, modes are normalised, ownership is root:root, file lists sorted.

`--if-changed` rebuilds only when the inputs (tracked sources, this script, configs)
hash differently from the last build (build/deb/INPUTS), for the test fixture.
Run: python3 packaging/build_deb.py [--out build/deb] [--if-changed]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGING = REPO / "packaging"
BASE_PYTHON = "/usr/bin/python3.11"
PY_VERSION = "3.11"

COMMON_CONTROL = {
    "Section": "admin",
    "Priority": "optional",
    "Architecture": "amd64",
    "Maintainer": "Meisitong developers <meisitong@example.invalid>",
    "Homepage": "https://example.invalid/meisitong",
}
PACKAGES = {
    "meisitong-hub": {
        "venv": "/opt/meisitong/hub",
        "command": "meisitong-hub",
        "config": "hub.toml",
        "depends": "python3 (>= 3.11), python3.11, systemd",
        "suggests": "",
        "description": "Meisitong fleet patching hub\n"
        " Publishes signed releases (TUF metadata), seeds payloads over BitTorrent,\n"
        " runs the tracker, the results API, the rollout controller and the console.",
    },
    "meisitong-agent": {
        "venv": "/opt/meisitong/agent",
        "command": "meisitong-agent",
        "config": "agent.toml",
        "depends": "python3 (>= 3.11), python3.11, systemd, dpkg",
        "suggests": "btrfs-progs",
        "description": "Meisitong fleet patching agent\n"
        " Verifies signed releases, fetches payloads from peers, installs them in its\n"
        " maintenance windows, snapshots before and reverts on its own when a health\n"
        " check fails.",
    },
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "build" / "deb")
    parser.add_argument("--if-changed", action="store_true")
    args = parser.parse_args()
    out: Path = args.out.resolve()
    if not Path(BASE_PYTHON).exists() or not shutil.which("dpkg-deb"):
        raise SystemExit(f"build_deb: needs {BASE_PYTHON} (Debian's python3.11, the "
                         "packages' interpreter) and dpkg-deb: apt-get install python3.11 dpkg")
    epoch = os.environ.get("SOURCE_DATE_EPOCH") or _git("log", "-1", "--format=%ct")
    inputs = _inputs_digest()
    stamp = out / "INPUTS"
    if args.if_changed and stamp.exists() and stamp.read_text() == inputs and all(
        (out / _deb_name(name)).exists() for name in PACKAGES
    ):
        print(f"up to date: {out}")
        return 0
    env = os.environ | {"SOURCE_DATE_EPOCH": epoch, "PYTHONHASHSEED": "0",
                        "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    work = REPO / "build" / "deb-work"
    shutil.rmtree(work, ignore_errors=True)
    wheel = _build_wheel(work, env)
    wheels = _dependency_wheels(wheel, env)
    out.mkdir(parents=True, exist_ok=True)
    for name, spec in PACKAGES.items():
        root = work / name
        _stage(root, name, spec, wheel, wheels, env)
        deb = out / _deb_name(name)
        # xz at level 1: any dpkg reads it; 34 MB in 8 s here, against 30 MB in 60-90 s
        # at the default level 6 on this shared machine (zstd: 0.7 s, but not every
        # dpkg in the field reads it).
        subprocess.run(["dpkg-deb", "--root-owner-group", "-Zxz", "-z1", "--build", str(root),
                        str(deb)], check=True, env=env, stdout=subprocess.DEVNULL)
        print(f"{deb} {deb.stat().st_size} bytes")
    stamp.write_text(inputs)
    shutil.rmtree(work, ignore_errors=True)
    return 0


def _version() -> str:
    import tomllib

    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


def _deb_name(name: str) -> str:
    return f"{name}_{_version()}_amd64.deb"


def _git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(REPO), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


def _inputs_digest() -> str:
    """Hash of every tracked file the packages are built from, as they are on disk."""
    digest = hashlib.sha256()
    names = _git("ls-files", "-co", "--exclude-standard", "agent", "hub", "config",
                 "packaging", "pyproject.toml", "LICENSE", "README.md").splitlines()
    for name in sorted(names):
        path = REPO / name
        if path.is_file():
            digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest() + "\n"


def _build_wheel(work: Path, env: dict[str, str]) -> Path:
    """The wheel of this checkout, built from a clean copy (no stale build/ or egg-info)."""
    source = work / "src"
    names = _git("ls-files", "-co", "--exclude-standard").splitlines()
    for name in names:
        path = REPO / name
        if path.is_file() and not name.startswith(("tests/", "build/")):
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, source / name)
    dist = work / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "-w", str(dist), str(source)], check=True, env=env)
    (wheel,) = dist.glob("meisitong-*.whl")
    return wheel


def _dependency_wheels(wheel: Path, env: dict[str, str]) -> Path:
    """Wheels of the dependencies, cached in build/deb-wheels (pip's ordinary index)."""
    cache = REPO / "build" / "deb-wheels"
    cache.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "wheel", "--quiet", "--find-links", str(cache),
               "-w", str(cache), str(wheel)]
    offline = subprocess.run([*command, "--no-index"], env=env, capture_output=True)
    if offline.returncode != 0:  # something new: resolve against the configured index
        subprocess.run(command, check=True, env=env)
    return cache


def _stage(root: Path, name: str, spec: dict[str, str], wheel: Path, wheels: Path,
           env: dict[str, str]) -> None:
    venv_final = spec["venv"]
    venv = root / venv_final.lstrip("/")
    venv.parent.mkdir(parents=True)
    subprocess.run([BASE_PYTHON, "-m", "venv", "--without-pip", str(venv)], check=True, env=env)
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"),
                    "install", "--quiet", "--no-compile", "--no-index", "--find-links",
                    str(wheels), str(wheel)], check=True, env=env)
    _relocate(venv, venv_final)
    subprocess.run([BASE_PYTHON, "-m", "compileall", "-q", "-j", "0",
                    "--invalidation-mode", "unchecked-hash", "-s", str(root), "-p", "/",
                    str(venv / "lib")], check=True, env=env)
    command = spec["command"]
    _symlink(root / "usr/bin" / command, f"../..{venv_final}/bin/{command}")
    _copy(PACKAGING / f"{name}.service", root / "lib/systemd/system" / f"{name}.service")
    _copy(PACKAGING / f"{name}.tmpfiles", root / "usr/lib/tmpfiles.d" / f"{name}.conf")
    sysusers = PACKAGING / f"{name}.sysusers"
    if sysusers.exists():
        _copy(sysusers, root / "usr/lib/sysusers.d" / f"{name}.conf")
    _copy(REPO / "config" / spec["config"], root / "etc/meisitong" / spec["config"])
    doc = root / "usr/share/doc" / name
    _copy(REPO / "LICENSE", doc / "copyright")
    debian = root / "DEBIAN"
    debian.mkdir()
    (debian / "conffiles").write_text(f"/etc/meisitong/{spec['config']}\n")
    postinst = (PACKAGING / "postinst.in").read_text().replace("@NAME@", name)
    (debian / "postinst").write_text(postinst)
    (debian / "prerm").write_text((PACKAGING / "prerm.in").read_text().replace("@NAME@", name))
    _normalise(root)
    for script in ("postinst", "prerm"):
        os.chmod(debian / script, 0o755)  # noqa: S103 (maintainer scripts)
    control = {"Package": name, "Version": _version(), **COMMON_CONTROL,
               "Installed-Size": str(_installed_kib(root)), "Depends": spec["depends"]}
    if spec["suggests"]:
        control["Suggests"] = spec["suggests"]
    control["Description"] = spec["description"]
    (debian / "control").write_text("".join(f"{k}: {v}\n" for k, v in control.items()))
    os.chmod(debian / "control", 0o644)
    os.chmod(debian / "conffiles", 0o644)


def _relocate(venv: Path, final: str) -> None:
    """Point what names the staging path (script shebangs, pyvenv.cfg) at `final`."""
    staged = str(venv).encode()
    for path in (venv / "bin").iterdir():
        if path.is_symlink() or not path.is_file():
            continue
        data = path.read_bytes()
        if staged in data:
            path.write_bytes(data.replace(staged, final.encode()))
    for activate in (venv / "bin").glob("activate*"):
        activate.unlink()  # a daemon's venv is not for interactive shells
    cfg = venv / "pyvenv.cfg"
    cfg.write_text("".join(line for line in cfg.read_text().splitlines(keepends=True)
                           if not line.startswith("command")))
    for direct_url in venv.glob("lib/python*/site-packages/*.dist-info/direct_url.json"):
        direct_url.unlink()  # it names the staging wheel's path (PEP 610)
        record = direct_url.parent / "RECORD"
        record.write_text("".join(line for line in record.read_text().splitlines(True)
                                  if "/direct_url.json," not in line))
    for cache in venv.rglob("__pycache__"):
        shutil.rmtree(cache)
    leftovers = [str(p) for p in venv.rglob("*") if p.is_file() and not p.is_symlink()
                 and p.suffix in {".py", ".pth", ".cfg", ".txt", ""} and staged in p.read_bytes()]
    if leftovers:
        raise SystemExit(f"staging path still named in: {', '.join(leftovers[:5])}")


def _symlink(link: Path, target: str) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target)


def _copy(source: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, dest)


def _normalise(root: Path) -> None:
    """Directories 0755, files 0644 or 0755 if executable by anyone; times to the epoch
    dpkg-deb clamps to anyway."""
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():
            continue
        mode = path.stat().st_mode
        # What a package installs is world-readable by design (S103).
        if path.is_dir():
            os.chmod(path, 0o755)  # noqa: S103
        else:
            executable = mode & (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
            os.chmod(path, 0o755 if executable else 0o644)  # noqa: S103


def _installed_kib(root: Path) -> int:
    total = sum(p.lstat().st_size for p in root.rglob("*")
                if not p.is_dir() and "DEBIAN" not in p.relative_to(root).parts)
    return (total + 1023) // 1024


if __name__ == "__main__":
    sys.exit(main())
