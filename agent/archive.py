"""Read and extract payload tar archives without letting them reach outside their root.

A payload is signed, but "signed" only means "the publisher meant it": a careless or
compromised build can still ship `../../etc/shadow`, a symlink to `/etc`, a device node or
a billion empty files. Every member is therefore validated *before* the first byte is
written, so a refused archive leaves the disk untouched (DESIGN §10):

- names: no absolute paths, no `..`, no empty names, bounded length;
- types: regular files, directories, symlinks and hard links only (no devices, FIFOs);
- links: a symlink must resolve inside the root (through the archive's own links and the
  links already on disk); a hard link must name an earlier regular file of the archive;
- no member is placed through a symlink the archive itself creates, nor through one on
  disk that points outside the root;
- setuid/setgid bits are *refused*, not stripped: silently dropping them would ship a
  broken binary to the whole fleet, while a refusal shows up at the first test install;
- the same name twice is allowed only with the same type (and, for links, target);
- member count and total size are bounded (tar bombs).

Extraction then runs through tarfile's `data` filter as a second line of defence, keeping
the archive's permission bits (which the `data` filter would otherwise loosen or drop).
Files are owned by the agent's user, not by the uid/gid recorded in the archive. An
existing file or symlink at a member's path is unlinked before the member is written, so
extraction never writes through a symlink or into another hard link of the old file.

Disk conflicts the archive cannot resolve (a file where a directory is on disk, or the
reverse) are InstallError, also found before anything is written. Failures *during*
extraction (disk full) can leave a partial tree; the caller's snapshot covers that.
"""

from __future__ import annotations

import logging
import lzma
import os
import stat
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

from agent.errors import InstallError, UnsafeArchiveError

logger = logging.getLogger(__name__)

DEFAULT_MAX_TOTAL_SIZE = 16 * 1024**3
DEFAULT_MAX_MEMBERS = 200_000
_MAX_NAME = 4096
_MAX_COMPONENT = 255
_MAX_LINK_HOPS = 40

MemberType = Literal["file", "dir", "symlink", "hardlink"]


@dataclass(frozen=True)
class ArchiveMember:
    """One validated member. `name` is normalised: relative, no `.`, no trailing slash."""

    name: str
    type: MemberType
    size: int
    mode: int
    linkname: str | None = None


def inspect_archive(
    tar_path: Path,
    *,
    max_total_size: int = DEFAULT_MAX_TOTAL_SIZE,
    max_members: int = DEFAULT_MAX_MEMBERS,
) -> list[ArchiveMember]:
    """Every member of `tar_path` (plain, gz, xz or bz2), after validating all of them."""
    with _open(tar_path) as tar:
        return [member for member, _ in _validated(tar, tar_path, max_total_size, max_members)]


def extract_archive(
    tar_path: Path,
    dest: Path,
    *,
    max_total_size: int = DEFAULT_MAX_TOTAL_SIZE,
    max_members: int = DEFAULT_MAX_MEMBERS,
) -> list[ArchiveMember]:
    """Extract `tar_path` into `dest` (created if missing) once every member is validated.

    The archive's own entry for its root (`.` or `./`) is skipped: the mode of the
    install root is the endpoint's business, not the payload's.
    """
    dest = Path(dest)
    with _open(tar_path) as tar:
        validated = _validated(tar, tar_path, max_total_size, max_members)
        _check_against_disk(validated, dest, tar_path)
        implied = _implied_directories(validated, dest)
        _make_directories(dest)
        tar.errorlevel = 2  # an attribute that cannot be set is an error, not a log line
        directories: list[tuple[ArchiveMember, tarfile.TarInfo]] = []
        for member, info in validated:
            target = dest / member.name
            if member.type != "dir" and _lexists_non_dir(target):
                target.unlink()
            try:
                tar.extract(info, dest, set_attrs=member.type != "dir", filter=_data_with_modes)
            except tarfile.FilterError as exc:
                raise UnsafeArchiveError(f"{tar_path}: member {member.name!r}: {exc}") from None
            except (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError) as exc:
                raise UnsafeArchiveError(
                    f"{tar_path}: cannot extract {member.name!r}: {exc}"
                ) from None
            except OSError as exc:
                raise InstallError(
                    f"{tar_path}: extracting {member.name!r} into {dest}: {exc}"
                ) from exc
            if member.type == "dir":
                directories.append((member, info))
        for path in implied:  # created by tarfile with the agent's umask (0077 under systemd)
            os.chmod(path, IMPLIED_DIRECTORY_MODE)
        # Directory modes and mtimes last, deepest first: creating children changes both.
        for member, info in sorted(directories, key=lambda pair: pair[0].name, reverse=True):
            path = dest / member.name
            try:
                os.chmod(path, member.mode)
                os.utime(path, (info.mtime, info.mtime))
            except OSError as exc:
                raise InstallError(f"{tar_path}: setting mode of {path}: {exc}") from exc
    logger.info("extracted %s into %s (%d members)", tar_path, dest, len(validated))
    return [member for member, _ in validated]


IMPLIED_DIRECTORY_MODE = 0o755
"""Mode of a directory the install creates that the archive does not describe (the
install root, its missing parents, parents of members the archive lists without
their directory): what `install -d` and dpkg give, never the agent's private umask."""


def _make_directories(dest: Path) -> None:
    missing = []
    for path in [dest, *dest.parents]:
        if path.exists():
            break
        missing.append(path)
    for path in reversed(missing):
        path.mkdir(exist_ok=True)
        os.chmod(path, IMPLIED_DIRECTORY_MODE)


def _implied_directories(
    validated: list[tuple[ArchiveMember, tarfile.TarInfo]], dest: Path
) -> list[Path]:
    """Parents of members that neither the archive lists nor the disk has yet."""
    listed = {member.name for member, _ in validated if member.type == "dir"}
    parents = {
        "/".join(member.name.split("/")[:depth])
        for member, _ in validated
        for depth in range(1, member.name.count("/") + 1)
    }
    return sorted(dest / name for name in parents - listed if not os.path.lexists(dest / name))


def _open(tar_path: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(tar_path, "r:*")
    except FileNotFoundError:
        raise UnsafeArchiveError(f"{tar_path}: no such payload archive") from None
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise UnsafeArchiveError(f"{tar_path}: not a readable tar archive: {exc}") from None


def _data_with_modes(info: tarfile.TarInfo, dest: str) -> tarfile.TarInfo:
    """tarfile's `data` filter (all its checks), but with the archive's permission bits."""
    safe = tarfile.data_filter(info, dest)
    if info.issym():
        return safe
    mode = info.mode & (0o1777 if info.isdir() else 0o777)
    return safe.replace(mode=mode, deep=False)


def _validated(
    tar: tarfile.TarFile, tar_path: Path, max_total_size: int, max_members: int
) -> list[tuple[ArchiveMember, tarfile.TarInfo]]:
    """Read all headers and apply every rule that needs only the archive."""
    result: list[tuple[ArchiveMember, tarfile.TarInfo]] = []
    seen: dict[str, ArchiveMember] = {}
    total = 0
    try:
        while (info := tar.next()) is not None:
            if len(result) >= max_members:
                raise UnsafeArchiveError(f"{tar_path}: more than {max_members} members")
            member = _check_member(info, tar_path)
            if member is None:
                continue
            total += member.size
            if total > max_total_size:
                raise UnsafeArchiveError(
                    f"{tar_path}: members add up to more than {max_total_size} bytes"
                )
            _check_duplicate(member, seen.get(member.name), tar_path)
            if member.type == "hardlink" and _hardlink_source(member, seen) is None:
                raise UnsafeArchiveError(
                    f"{tar_path}: member {member.name!r} is a hard link to {member.linkname!r},"
                    " which is not an earlier regular file of the archive"
                )
            seen[member.name] = member
            info = info.replace(name=member.name, deep=False)
            if member.type == "hardlink":
                info = info.replace(linkname=member.linkname or "", deep=False)
            result.append((member, info))
        _check_end_marker(tar, tar_path)
    except (tarfile.TarError, EOFError, OSError, zlib.error, lzma.LZMAError) as exc:
        raise UnsafeArchiveError(f"{tar_path}: not a readable tar archive: {exc}") from None
    _check_parents_and_links(seen, tar_path)
    return result


def _check_end_marker(tar: tarfile.TarFile, tar_path: Path) -> None:
    """Refuse an archive cut off at or inside a header, which tarfile reads as a clean end.

    tarfile stops quietly at a short or missing header; a well-formed archive ends with two
    zero blocks. tarfile has consumed the first block after the last member; the second
    is read forwards so a compressed stream is not rewound.
    """
    fileobj = tar.fileobj
    assert fileobj is not None
    zero_block = tarfile.NUL * tarfile.BLOCKSIZE
    consumed = fileobj.tell() - tar.offset
    if consumed < tarfile.BLOCKSIZE or fileobj.read(tarfile.BLOCKSIZE) != zero_block:
        raise UnsafeArchiveError(f"{tar_path}: truncated tar archive (no end-of-archive marker)")


def _check_member(info: tarfile.TarInfo, tar_path: Path) -> ArchiveMember | None:
    raw = info.name
    where = f"{tar_path}: member {raw!r}"
    if raw.startswith("/"):
        raise UnsafeArchiveError(f"{where}: absolute path")
    if "\x00" in raw or len(raw) > _MAX_NAME:
        raise UnsafeArchiveError(f"{where}: malformed name")
    parts = [part for part in raw.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchiveError(f"{where}: '..' component")
    if any(len(part.encode()) > _MAX_COMPONENT for part in parts):
        raise UnsafeArchiveError(f"{where}: a path component is longer than 255 bytes")
    kind: MemberType
    if info.isreg():
        kind = "file"
    elif info.isdir():
        kind = "dir"
    elif info.issym():
        kind = "symlink"
    elif info.islnk():
        kind = "hardlink"
    elif info.ischr() or info.isblk():
        raise UnsafeArchiveError(f"{where}: device file")
    elif info.isfifo():
        raise UnsafeArchiveError(f"{where}: FIFO")
    else:
        raise UnsafeArchiveError(f"{where}: unsupported member type {info.type!r}")
    if info.mode & (stat.S_ISUID | stat.S_ISGID) and kind != "symlink":
        raise UnsafeArchiveError(
            f"{where}: setuid/setgid bits ({info.mode:o}) are refused, not stripped"
        )
    if not parts:
        if kind != "dir":
            raise UnsafeArchiveError(f"{where}: the archive root must be a directory")
        return None  # the root entry itself: skipped, see extract_archive
    linkname: str | None = None
    if kind in ("symlink", "hardlink"):
        linkname = info.linkname
        if not linkname or "\x00" in linkname:
            raise UnsafeArchiveError(f"{where}: empty link target")
        if linkname.startswith("/"):
            raise UnsafeArchiveError(f"{where}: link to absolute path {linkname!r}")
        if kind == "hardlink":
            link_parts = [p for p in linkname.split("/") if p not in ("", ".")]
            if ".." in link_parts or not link_parts:
                raise UnsafeArchiveError(f"{where}: hard link to {linkname!r} leaves the root")
            linkname = "/".join(link_parts)
    size = info.size if kind == "file" else 0
    return ArchiveMember("/".join(parts), kind, size, info.mode & 0o7777, linkname)


def _check_duplicate(member: ArchiveMember, earlier: ArchiveMember | None, tar_path: Path) -> None:
    if earlier is None:
        return
    if earlier.type != member.type or earlier.linkname != member.linkname:
        raise UnsafeArchiveError(
            f"{tar_path}: member {member.name!r} appears twice with conflicting types"
            f" ({_describe(earlier)}, then {_describe(member)})"
        )


def _describe(member: ArchiveMember) -> str:
    return f"{member.type} to {member.linkname!r}" if member.linkname else member.type


def _hardlink_source(member: ArchiveMember, seen: dict[str, ArchiveMember]) -> ArchiveMember | None:
    source = seen.get(member.linkname or "")
    return source if source is not None and source.type == "file" else None


def _check_parents_and_links(members: dict[str, ArchiveMember], tar_path: Path) -> None:
    """Parents must be directories of the archive (or absent); symlinks must stay inside."""
    for name, member in members.items():
        parent_parts = name.split("/")[:-1]
        for depth in range(1, len(parent_parts) + 1):
            parent = members.get("/".join(parent_parts[:depth]))
            if parent is None or parent.type == "dir":
                continue
            raise UnsafeArchiveError(
                f"{tar_path}: member {name!r} lies beneath {parent.name!r}, which the archive"
                f" makes a {parent.type}"
            )
        if member.type == "symlink":
            _require_inside(
                _Resolver(members, None), parent_parts + (member.linkname or "").split("/"),
                f"{tar_path}: member {name!r}: symlink to {member.linkname!r}",
            )


def _check_against_disk(
    validated: list[tuple[ArchiveMember, tarfile.TarInfo]], dest: Path, tar_path: Path
) -> None:
    """Rules that depend on what `dest` already holds: links on disk, type conflicts."""
    members = {member.name: member for member, _ in validated}
    resolver = _Resolver(members, dest)
    for member, _ in validated:
        where = f"{tar_path}: member {member.name!r}"
        parts = member.name.split("/")
        follow = parts if member.type == "dir" else parts[:-1]
        _require_inside(resolver, follow, f"{where}: written through a symlink on disk")
        if member.type == "symlink":
            _require_inside(
                resolver, parts[:-1] + (member.linkname or "").split("/"),
                f"{where}: symlink to {member.linkname!r}",
            )
        path = dest / member.name
        try:
            on_disk = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            continue
        if member.type == "dir" and not path.is_dir():
            raise InstallError(f"{where}: a directory in the archive, but {path} is not one")
        if member.type != "dir" and stat.S_ISDIR(on_disk.st_mode):
            raise InstallError(f"{where}: a {member.type} in the archive, but {path} is a dir")


def _require_inside(resolver: _Resolver, parts: list[str], message: str) -> None:
    if not resolver.stays_inside(parts):
        raise UnsafeArchiveError(f"{message} leads outside the root")


class _Resolver:
    """Resolve a relative path the way the kernel will once the archive is extracted.

    The archive's symlinks and files replace what is on disk; its directories do not
    replace a symlink on disk (extraction follows it, as tar does), so those come from
    disk. Members placed beneath an archive symlink were refused before this runs.
    """

    def __init__(self, members: dict[str, ArchiveMember], dest: Path | None) -> None:
        self._members = members
        self._dest = dest
        self._real_dest = PurePosixPath(os.path.realpath(dest)) if dest is not None else None

    def stays_inside(self, parts: list[str]) -> bool:
        pending = [p for p in reversed(parts) if p not in ("", ".")]
        current: list[str] = []
        hops = 0
        while pending:
            part = pending.pop()
            if part == "..":
                if not current:
                    return False
                current.pop()
                continue
            candidate = [*current, part]
            target = self._link_target("/".join(candidate))
            if target is None:
                current = candidate
                continue
            hops += 1
            if hops > _MAX_LINK_HOPS:
                return False
            if target.startswith("/"):
                inside = self._inside_part(target)
                if inside is None:
                    return False
                current = []
                target = inside
            pending.extend(p for p in reversed(target.split("/")) if p not in ("", "."))
        return True

    def _link_target(self, name: str) -> str | None:
        member = self._members.get(name)
        if member is not None and member.type == "symlink":
            return member.linkname
        if member is not None and member.type != "dir":
            return None  # the archive replaces whatever is on disk with a file
        if self._dest is None:
            return None
        path = self._dest / name
        return os.readlink(path) if path.is_symlink() else None

    def _inside_part(self, absolute: str) -> str | None:
        """An absolute on-disk link target, relative to dest if it points inside it."""
        if self._real_dest is None:
            return None
        target = PurePosixPath(os.path.normpath(absolute))
        if target == self._real_dest:
            return ""
        if self._real_dest in target.parents:
            return str(target.relative_to(self._real_dest))
        return None


def _lexists_non_dir(path: Path) -> bool:
    try:
        return not stat.S_ISDIR(os.lstat(path).st_mode)
    except (FileNotFoundError, NotADirectoryError):
        return False
