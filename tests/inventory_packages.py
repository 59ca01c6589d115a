"""Realistic Debian package lists for inventory tests and measurements: binary names,
versions with epochs, Debian revisions, `+debNuM` security updates and binNMUs, library
packages built from a differently named source, multiarch twins."""

from __future__ import annotations

import random

from agent.inventory.records import Snapshot
from agent.wire.inventory import Hardware, OsRelease, PackageRow

_STEMS = ("ssl", "curl", "xml2", "glib", "gtk", "pango", "cairo", "png", "jpeg", "tiff",
          "sqlite", "pcre", "zstd", "lzma", "bz2", "ffi", "gmp", "mpfr", "idn", "krb5",
          "ldap", "sasl", "nss", "nspr", "x11", "xcb", "drm", "gl", "vulkan", "pulse",
          "alsa", "dbus", "systemd", "udev", "cap", "acl", "attr", "selinux", "audit",
          "pam", "ncurses", "readline", "tinfo", "gnutls", "nettle", "hogweed", "tasn1",
          "p11", "unistring", "gcrypt", "gpg-error", "assuan", "ksba", "npth", "yaml",
          "jansson", "json-c", "event", "uv", "ev", "boost", "icu", "harfbuzz", "fribidi")
_PREFIXES = ("lib", "python3-", "golang-", "node-", "ruby-", "fonts-", "r-cran-", "perl-")
_SUFFIXES = ("", "-dev", "-doc", "-common", "-data", "-bin", "-utils", "-tools", "0", "1",
             "2", "3", "6", "-3", "-1.0-0", "t64", "-perl")


def _version(rng: random.Random) -> str:
    upstream = ".".join(str(rng.randint(0, 40)) for _ in range(rng.randint(2, 3)))
    if rng.random() < 0.1:
        upstream = f"{rng.randint(1, 3)}:{upstream}"
    if rng.random() < 0.05:
        upstream += f"~rc{rng.randint(1, 4)}"
    revision = f"-{rng.randint(1, 9)}"
    if rng.random() < 0.15:
        revision += f"+deb12u{rng.randint(1, 6)}"
    return upstream + revision


def package_list(count: int = 3000, seed: int = 1) -> list[PackageRow]:
    rng = random.Random(seed)
    rows: dict[str, PackageRow] = {}
    while len(rows) < count:
        stem = rng.choice(_STEMS) + ("" if rng.random() < 0.5 else str(rng.randint(2, 999)))
        name = rng.choice(_PREFIXES) + stem + rng.choice(_SUFFIXES)
        arch = rng.choice(("amd64",) * 6 + ("all",) * 3 + ("i386",))
        version = _version(rng)
        source, source_version = name, version
        if rng.random() < 0.45:  # a library built from its project's source package
            source = stem
        if rng.random() < 0.05:  # a binNMU: the binary's version carries +bN
            version = f"{version}+b{rng.randint(1, 3)}"
        rows[f"{name}:{arch}"] = (name, version, arch, source, source_version)
    return sorted(rows.values(), key=lambda row: f"{row[0]}:{row[2]}")


def snapshot(packages: list[PackageRow] | None = None) -> Snapshot:
    return Snapshot(
        os=OsRelease(id="debian", version_id="12", codename="bookworm",
                     pretty_name="Debian GNU/Linux 12 (bookworm)"),
        kernel="6.1.0-18-amd64", architecture="x86_64",
        hardware=Hardware(cpu_count=4, cpu_model="Test CPU", memory_bytes=8 << 30,
                          disk_total_bytes=100 << 30, disk_free_bytes=40 << 30),
        packages=package_list() if packages is None else packages,
    )


def upgraded(rows: list[PackageRow], how_many: int, seed: int = 2) -> list[PackageRow]:
    """`rows` after a security update of `how_many` packages, one removed, one added."""
    rng = random.Random(seed)
    changed = list(rows)
    for index in rng.sample(range(len(changed)), how_many):
        name, version, arch, source, source_version = changed[index]
        changed[index] = (name, version + "+deb12u9", arch, source, source_version + "+deb12u9")
    del changed[rng.randrange(len(changed))]
    name = "newly-installed-tool" if seed == 2 else f"newly-installed-tool{seed}"
    changed.append((name, "1.2.3-1", "amd64", name, "1.2.3-1"))
    return changed
