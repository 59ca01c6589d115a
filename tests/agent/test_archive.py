"""Payload archives are validated member by member before anything lands on disk."""

import os
import stat
import tarfile

import pytest

from agent.archive import _data_with_modes, extract_archive, inspect_archive
from agent.errors import InstallError, UnsafeArchiveError
from tests.agent._tar_fixtures import (
    MTIME,
    build_tar,
    directory,
    file,
    hardlink,
    special,
    symlink,
)


def listing(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


@pytest.fixture
def dest(tmp_path):
    dest = tmp_path / "root"
    dest.mkdir()
    return dest


@pytest.mark.parametrize("compression", ["", "gz", "xz", "bz2"])
def test_archive_extracts_with_modes_links_and_mtimes(tmp_path, dest, compression):
    tar = build_tar(
        tmp_path / "payload.tar",
        directory("./"),
        directory("./bin", 0o750),
        file("./bin/tool", b"#!/bin/sh\n", 0o755),
        file("etc/app.conf", b"x=1\n", 0o640),
        symlink("bin/latest", "tool"),
        hardlink("etc/app.conf.hard", "etc/app.conf", 0o640),
        compression=compression,
    )
    members = extract_archive(tar, dest)
    assert [m.name for m in members] == [
        "bin", "bin/tool", "etc/app.conf", "bin/latest", "etc/app.conf.hard",
    ]
    assert (dest / "bin/tool").read_bytes() == b"#!/bin/sh\n"
    assert stat.S_IMODE(os.stat(dest / "bin").st_mode) == 0o750
    assert stat.S_IMODE(os.stat(dest / "bin/tool").st_mode) == 0o755
    assert stat.S_IMODE(os.stat(dest / "etc/app.conf").st_mode) == 0o640
    assert os.readlink(dest / "bin/latest") == "tool"
    assert os.path.samefile(dest / "etc/app.conf", dest / "etc/app.conf.hard")
    assert os.stat(dest / "bin").st_mtime == MTIME
    assert os.stat(dest / "bin/tool").st_mtime == MTIME


def test_inspect_lists_normalised_members_with_types_sizes_and_modes(tmp_path):
    tar = build_tar(
        tmp_path / "p.tar", directory("./"), file("./a/b.txt", b"12345", 0o600),
        symlink("a/c", "b.txt"),
    )
    members = inspect_archive(tar)
    assert [(m.name, m.type, m.size, m.mode, m.linkname) for m in members] == [
        ("a/b.txt", "file", 5, 0o600, None),
        ("a/c", "symlink", 0, 0o777, "b.txt"),
    ]


def test_archive_root_entry_does_not_change_the_install_root(tmp_path, dest):
    os.chmod(dest, 0o711)
    extract_archive(build_tar(tmp_path / "p.tar", directory(".", 0o777), file("f")), dest)
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o711


def test_archive_with_dotdot_member_is_refused_and_nothing_extracted(tmp_path, dest):
    tar = build_tar(tmp_path / "p.tar", file("good"), file("sub/../../evil"))
    with pytest.raises(UnsafeArchiveError, match=r"p\.tar.*sub/\.\./\.\./evil.*'\.\.'"):
        extract_archive(tar, dest)
    assert listing(dest) == []
    assert not (tmp_path / "evil").exists()


def test_absolute_member_is_refused(tmp_path, dest):
    tar = build_tar(tmp_path / "p.tar", file("ok"), file("/etc/cron.d/evil"))
    with pytest.raises(UnsafeArchiveError, match="'/etc/cron.d/evil': absolute path"):
        extract_archive(tar, dest)
    assert listing(dest) == []


@pytest.mark.parametrize("target", ["/etc", "../../etc", "../a/../../x", "sub/../../.."])
def test_symlink_out_of_root_refused(tmp_path, dest, target):
    tar = build_tar(tmp_path / "p.tar", directory("a"), file("a/f"), symlink("a/link", target))
    with pytest.raises(UnsafeArchiveError, match="a/link"):
        extract_archive(tar, dest)
    assert listing(dest) == []


def test_symlink_escaping_through_another_archive_symlink_refused(tmp_path, dest):
    # `z` -> "." is harmless alone; `w` -> "z/.." looks like the root lexically but
    # resolves to the root's parent.
    tar = build_tar(
        tmp_path / "p.tar", directory("d"), symlink("d/z", "."), symlink("d/w", "z/../..")
    )
    with pytest.raises(UnsafeArchiveError, match="d/w"):
        inspect_archive(tar)


def test_symlink_inside_root_through_archive_links_is_allowed(tmp_path, dest):
    tar = build_tar(
        tmp_path / "p.tar", directory("lib64"), file("lib64/libx.so.1"),
        symlink("lib", "lib64"), symlink("libx.so", "lib/libx.so.1"),
    )
    extract_archive(tar, dest)
    assert (dest / "libx.so").read_bytes() == b"content\n"


def test_member_beneath_an_archive_symlink_is_refused(tmp_path, dest):
    tar = build_tar(tmp_path / "p.tar", symlink("escape", "."), file("escape/f"))
    with pytest.raises(UnsafeArchiveError, match="'escape/f' lies beneath 'escape'"):
        extract_archive(tar, dest)
    assert listing(dest) == []


@pytest.mark.parametrize("target", ["../outside", "etc/passwd", "/etc/passwd"])
def test_hardlink_to_anything_but_an_earlier_member_is_refused(tmp_path, dest, target):
    tar = build_tar(tmp_path / "p.tar", file("a"), hardlink("h", target))
    with pytest.raises(UnsafeArchiveError, match="'h'"):
        extract_archive(tar, dest)
    assert listing(dest) == []


@pytest.mark.parametrize(
    ("kind", "word"),
    [(tarfile.CHRTYPE, "device"), (tarfile.BLKTYPE, "device"), (tarfile.FIFOTYPE, "FIFO")],
)
def test_device_file_refused(tmp_path, dest, kind, word):
    tar = build_tar(tmp_path / "p.tar", file("ok"), special("dev/null2", kind))
    with pytest.raises(UnsafeArchiveError, match=f"'dev/null2': {word}"):
        extract_archive(tar, dest)
    assert listing(dest) == []


@pytest.mark.parametrize("mode", [0o4755, 0o2755])
def test_setuid_and_setgid_members_are_refused_not_stripped(tmp_path, dest, mode):
    tar = build_tar(tmp_path / "p.tar", file("bin/su2", b"elf", mode))
    with pytest.raises(UnsafeArchiveError, match="setuid/setgid"):
        extract_archive(tar, dest)
    assert listing(dest) == []


def test_duplicate_names_with_conflicting_types_refused(tmp_path, dest):
    tar = build_tar(tmp_path / "p.tar", file("x"), symlink("x", "y"))
    with pytest.raises(UnsafeArchiveError, match="'x' appears twice with conflicting types"):
        inspect_archive(tar)


def test_duplicate_files_are_allowed_and_the_last_wins(tmp_path, dest):
    tar = build_tar(tmp_path / "p.tar", file("x", b"first"), file("x", b"second"))
    extract_archive(tar, dest)
    assert (dest / "x").read_bytes() == b"second"


def test_member_written_through_existing_symlink_pointing_outside_is_refused(tmp_path, dest):
    outside = tmp_path / "outside"
    outside.mkdir()
    (dest / "conf").symlink_to(outside)
    tar = build_tar(tmp_path / "p.tar", file("conf/evil"))
    with pytest.raises(UnsafeArchiveError, match="'conf/evil': written through a symlink"):
        extract_archive(tar, dest)
    assert list(outside.iterdir()) == []


def test_directory_member_over_existing_symlink_pointing_outside_is_refused(tmp_path, dest):
    outside = tmp_path / "outside"
    outside.mkdir(mode=0o700)
    (dest / "conf").symlink_to(outside)
    with pytest.raises(UnsafeArchiveError, match="'conf'"):
        extract_archive(build_tar(tmp_path / "p.tar", directory("conf", 0o777)), dest)
    assert stat.S_IMODE(os.stat(outside).st_mode) == 0o700


def test_existing_symlink_inside_root_is_followed_for_directories(tmp_path, dest):
    (dest / "real").mkdir()
    (dest / "lib").symlink_to("real")
    extract_archive(build_tar(tmp_path / "p.tar", directory("lib"), file("lib/x")), dest)
    assert (dest / "real/x").read_bytes() == b"content\n"
    assert (dest / "lib").is_symlink()


def test_existing_symlink_at_a_file_member_is_replaced_not_written_through(tmp_path, dest):
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    (dest / "f").symlink_to(victim)
    extract_archive(build_tar(tmp_path / "p.tar", file("f", b"new")), dest)
    assert victim.read_bytes() == b"precious"
    assert not (dest / "f").is_symlink()
    assert (dest / "f").read_bytes() == b"new"


def test_existing_hardlink_at_a_file_member_is_not_written_through(tmp_path, dest):
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    os.link(victim, dest / "f")
    extract_archive(build_tar(tmp_path / "p.tar", file("f", b"new")), dest)
    assert victim.read_bytes() == b"precious"
    assert (dest / "f").read_bytes() == b"new"


def test_file_where_a_directory_exists_is_install_error_and_nothing_extracted(tmp_path, dest):
    (dest / "etc").mkdir()
    tar = build_tar(tmp_path / "p.tar", file("first"), file("etc"))
    with pytest.raises(InstallError, match="'etc'.*is a dir"):
        extract_archive(tar, dest)
    assert listing(dest) == ["etc"]


def test_directory_where_a_file_exists_is_install_error(tmp_path, dest):
    (dest / "etc").write_bytes(b"")
    tar = build_tar(tmp_path / "p.tar", directory("etc"), file("etc/x"))
    with pytest.raises(InstallError, match="'etc'"):
        extract_archive(tar, dest)


def test_not_a_tar_is_refused_naming_the_file(tmp_path, dest):
    bogus = tmp_path / "payload.tar"
    bogus.write_bytes(b"this is not a tar archive at all\n" * 40)
    with pytest.raises(UnsafeArchiveError, match=r"payload\.tar: not a readable tar archive"):
        extract_archive(bogus, dest)
    with pytest.raises(UnsafeArchiveError, match="no such payload archive"):
        inspect_archive(tmp_path / "missing.tar")


@pytest.mark.parametrize("cut", [700, 512 * 3 + 100, 512 * 3, 512 * 4])
def test_truncated_tar_is_refused_and_nothing_extracted(tmp_path, dest, cut):
    # Layout: header a (512), data a (1024), header b at 1536, data b (1024), end.
    full = build_tar(tmp_path / "full.tar", file("a", b"a" * 1024), file("b", b"b" * 1024))
    cut_tar = tmp_path / "cut.tar"
    cut_tar.write_bytes(full.read_bytes()[:cut])
    with pytest.raises(UnsafeArchiveError, match=r"cut\.tar"):
        extract_archive(cut_tar, dest)
    assert listing(dest) == []


def test_truncated_compressed_tar_is_refused(tmp_path, dest):
    full = build_tar(
        tmp_path / "full.tar.gz", file("a", os.urandom(64 * 1024)), compression="gz"
    )
    cut_tar = tmp_path / "cut.tar.gz"
    cut_tar.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(UnsafeArchiveError, match=r"cut\.tar\.gz"):
        extract_archive(cut_tar, dest)
    assert listing(dest) == []


def test_member_count_and_total_size_are_bounded(tmp_path, dest):
    many = build_tar(tmp_path / "many.tar", *(file(f"f{i}") for i in range(11)))
    with pytest.raises(UnsafeArchiveError, match="more than 10 members"):
        extract_archive(many, dest, max_members=10)
    big = build_tar(tmp_path / "big.tar", file("a", b"x" * 600), file("b", b"x" * 600))
    with pytest.raises(UnsafeArchiveError, match="more than 1000 bytes"):
        extract_archive(big, dest, max_total_size=1000)
    assert listing(dest) == []


def test_data_filter_backs_up_validation_and_keeps_archive_modes(tmp_path):
    link = tarfile.TarInfo("l")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    with pytest.raises(tarfile.FilterError):
        _data_with_modes(link, str(tmp_path))
    member = tarfile.TarInfo("f")
    member.mode = 0o664
    assert _data_with_modes(member, str(tmp_path)).mode == 0o664
