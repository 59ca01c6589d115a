"""Every signed target at the path the TUF specification gives it: `DIR/HASH.NAME`.

The hub's root turns consistent snapshots on, so a conformant client fetches target
`DIR/NAME` from `targets/DIR/HASH.NAME`, HASH being one of the digests the targets
metadata lists for it: python-tuf takes the first, other clients may take any
(specification §5.7.3). So for each target the hub keeps one file per listed hash, the
payloads included, and any spec-conformant client (tuf-js is tested) finds them all.

- Small targets (torrents, policies, assignments, rollout documents) are written by
  hub/repository/tuf_repository.py under each of their hash names.
- Payloads stay where the web seed and the seeder read them (HubDir.payloads, at their
  target path: a BEP 19 web seed needs the file name at the end of its URL). Under the
  targets directory they are hard links to that file, so no second copy; when the two
  directories are on different filesystems, symlinks (the /targets mount follows them).
- Links are made before the metadata that lists them is committed, so a client never
  reads metadata naming a target that is not there yet.
- `repair_target_files` brings an existing hub up to this layout (payloads published
  before it were only under /payloads/); `serve` runs it at start.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from hub.hub_dir import HubDir
from hub.repository.metadata_signing import consistent_target_name, load_state

log = logging.getLogger(__name__)

# Errors of os.link that mean "no hard link here", not "something is wrong".
_NO_HARD_LINK = frozenset({errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP})


def consistent_paths(targets_dir: Path, target_path: str, hashes: Mapping[str, str]) -> list[Path]:
    """Where a client may look for `target_path`: one `DIR/HASH.NAME` per listed hash."""
    return [targets_dir / consistent_target_name(target_path, digest)
            for digest in dict.fromkeys(hashes.values())]


def link_target(source: Path, destinations: Iterable[Path]) -> list[Path]:
    """Make each destination that does not exist yet name `source`'s file: a hard link,
    else (another filesystem) an absolute symlink. Each link appears atomically (made
    under a temporary name, then renamed). Returns the links made, for the caller to
    remove if what they were for fails; raises OSError, having removed its own."""
    made: list[Path] = []
    try:
        for destination in destinations:
            if destination.exists():
                continue
            destination.parent.mkdir(parents=True, exist_ok=True)
            temporary = destination.with_name(f".{destination.name}.link-{os.getpid()}")
            temporary.unlink(missing_ok=True)
            try:
                os.link(source, temporary)
            except OSError as exc:
                if exc.errno not in _NO_HARD_LINK:
                    raise
                temporary.symlink_to(source.resolve())
            os.replace(temporary, destination)
            made.append(destination)
    except OSError:
        remove_links(made)
        raise
    return made


def remove_links(links: Iterable[Path]) -> None:
    for link in links:
        link.unlink(missing_ok=True)


def repair_target_files(hub_dir: HubDir) -> int:
    """Give every target that the signed metadata lists (top-level targets and the rollout
    role) a file at each of its `DIR/HASH.NAME` paths, linking to a copy it already has or
    to its payload. Returns how many links were made. A target with no copy anywhere is
    logged as an error and left alone: nothing here can make its bytes."""
    state = load_state(hub_dir.metadata)
    made = 0
    listed = {**state.targets.signed.targets, **state.rollout.signed.targets}
    for target_path, target in listed.items():
        paths = consistent_paths(hub_dir.targets, target_path, target.hashes)
        missing = [path for path in paths if not path.exists()]
        if not missing:
            continue
        payload = hub_dir.payloads / target_path
        sources = [path for path in paths if path.exists()] + [payload] * payload.is_file()
        if not sources:
            log.error("target %s: no copy on disk (neither %s nor %s); clients cannot fetch it",
                      target_path, missing[0], payload)
            continue
        if sources[0].stat().st_size != target.length:
            log.error("target %s: %s is %d bytes, the metadata says %d; not linking it",
                      target_path, sources[0], sources[0].stat().st_size, target.length)
            continue
        made += len(link_target(sources[0], missing))
        log.info("target %s: linked at %s", target_path, ", ".join(map(str, missing)))
    return made
