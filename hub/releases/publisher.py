"""Publish a release: admin-signed target for the payload and its torrent.

The order makes a failure harmless: the payload is copied and hashed, the torrent made,
and only then is the targets role signed with the offline release key; if anything before
signing fails, the copied files are removed and no metadata changed.

The torrent names the hub's tracker and web seed as `public_url` in hub.toml gives them
at publish time (for standard BitTorrent clients; agents ignore both), so set it before
publishing on a hub that agents reach by another name than its listen address.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from agent.archive import inspect_archive
from agent.errors import AgentError
from agent.wire.release import (
    CommandPairInstall,
    DpkgInstall,
    ReleaseInfo,
    ReleaseManifest,
    TorrentRef,
    release_target_path,
)
from hub.config import HubConfig
from hub.database import HubDatabase
from hub.errors import PublishError
from hub.hub_dir import HubDir
from hub.repository.tuf_repository import HubRepository, ReleaseTargetEntry
from hub.swarm.torrent_maker import make_hybrid_torrent

Progress = Callable[[str, int, int], None]
"""progress(phase, done, total): phase is 'hashing' or 'torrent'."""

HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class PublishedRelease:
    target: str
    name: str
    version: str
    length: int
    sha256: str
    torrent_target: str
    info_hash_v1: str
    info_hash_v2: str
    hash_seconds: float
    torrent_seconds: float
    web_seed: str = ""
    """The payload's URL the torrent names for standard clients (BEP 19 url-list)."""
    tracker: str = ""
    """The announce URL the torrent names for standard clients."""
    public_url_set: bool = True
    """False when hub.toml has no public_url, so both URLs are the listen address's."""


def _check_payload_fits_install(manifest: ReleaseManifest, payload: Path) -> None:
    """Refuse at publish time what every endpoint would refuse at install time."""
    if isinstance(manifest.install, DpkgInstall):
        with payload.open("rb") as head:
            magic = head.read(8)
        if magic != b"!<arch>\n":
            raise PublishError(f"{payload}: not a Debian package (.deb), but install.type is dpkg")
        return
    try:
        members = inspect_archive(payload)
    except AgentError as exc:
        raise PublishError(f"{payload}: {exc}") from None
    if isinstance(manifest.install, CommandPairInstall):
        names = {member.name.removeprefix("./") for member in members}
        for program in (manifest.install.install, manifest.install.rollback):
            if program not in names:
                raise PublishError(
                    f"{payload}: install spec names program {program!r}, "
                    "which the archive does not contain"
                )


def _hash_file(path: Path, progress: Progress | None) -> tuple[int, str]:
    total = path.stat().st_size
    digest = hashlib.sha256()
    done = 0
    with path.open("rb") as source:
        while chunk := source.read(HASH_CHUNK):
            digest.update(chunk)
            done += len(chunk)
            if progress:
                progress("hashing", done, total)
    return done, digest.hexdigest()


def _missing_parents(directory: Path, stop: Path) -> list[Path]:
    """The directories from `directory` up to (not including) `stop` that do not exist
    yet, deepest first: what a failed publish must remove again."""
    missing = []
    while directory != stop and not directory.exists():
        missing.append(directory)
        directory = directory.parent
    return missing


def publish_release(
    hub_dir: HubDir,
    manifest_file: Path,
    payload: Path,
    offline_keys_dir: Path | None = None,
    progress: Progress | None = None,
    actor: str = "admin",
    now: datetime | None = None,
) -> PublishedRelease:
    """Publish PAYLOAD as the release MANIFEST_FILE describes. `now` is the publication
    time the release key signs (deadlines and deferrals count from it): the wall clock
    unless a simulation on trio's MockClock gives its own."""
    import time

    hub_dir.require_initialized()
    manifest = ReleaseManifest.from_toml_file(manifest_file)
    config = HubConfig.load(hub_dir.config_file)
    public_url = config.public_url
    if not payload.is_file():
        raise PublishError(f"{payload}: no such payload file")
    database = HubDatabase(hub_dir.database)
    try:
        if database.query(
            "SELECT 1 FROM releases WHERE name = ? AND version = ?",
            (manifest.name, manifest.version),
        ):
            raise PublishError(
                f"{manifest.name} {manifest.version} is already published; "
                "bump the version in the release file"
            )
        _check_payload_fits_install(manifest, payload)
        target = release_target_path(manifest.name, manifest.version, payload.name)
        served = hub_dir.payloads / target
        with tempfile.TemporaryDirectory(dir=hub_dir.root, prefix=".publish-") as scratch:
            staged = Path(scratch) / payload.name
            shutil.copyfile(payload, staged)
            started = time.monotonic()
            length, sha256 = _hash_file(staged, progress)
            hashed = time.monotonic()
            def torrent_progress(done: int, total: int) -> None:
                if progress:
                    progress("torrent", done, total)

            web_seed, tracker = f"{public_url}/payloads/{quote(target)}", f"{public_url}/announce"
            made = make_hybrid_torrent(
                staged, progress=torrent_progress, web_seed=web_seed, tracker=tracker
            )
            torrent_seconds = time.monotonic() - hashed
            torrent_file = Path(scratch) / f"{payload.name}.torrent"
            torrent_file.write_bytes(made.torrent_bytes)
            torrent_target = f"{target}.torrent"
            info = ReleaseInfo(
                manifest=manifest,
                payload_name=payload.name,
                torrent=TorrentRef(
                    path=torrent_target,
                    info_hash_v1=made.info_hash_v1,
                    info_hash_v2=made.info_hash_v2,
                ),
                published_at=(now or datetime.now(UTC)).isoformat(timespec="seconds"),
            )
            created = _missing_parents(served.parent, hub_dir.payloads)
            served.parent.mkdir(parents=True, exist_ok=True)
            staged.replace(served)
            try:
                repository = HubRepository(hub_dir, offline_keys_dir=offline_keys_dir)
                repository.add_release_targets(
                    [
                        ReleaseTargetEntry(
                            target_path=target,
                            local_file=served,
                            custom=info.to_custom(),
                            serve_via_tuf=False,
                            known_hashes={"sha256": sha256},
                        ),
                        ReleaseTargetEntry(
                            target_path=torrent_target,
                            local_file=torrent_file,
                            custom=None,
                            serve_via_tuf=True,
                        ),
                    ]
                )
            except BaseException:
                # A failed publish leaves nothing behind: no payload, no empty directory.
                served.unlink(missing_ok=True)
                for directory in created:
                    directory.rmdir()
                raise
        with database.transaction() as db:
            db.execute(
                "INSERT INTO releases (target, name, version, severity, category, length, sha256,"
                " torrent_target, info_hash_v1, info_hash_v2, published_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    target, manifest.name, manifest.version, manifest.severity,
                    manifest.category, length, sha256, torrent_target, made.info_hash_v1,
                    made.info_hash_v2, info.published_at,
                ),
            )
            database.audit(
                db, actor, "release.publish", target, sha256=sha256, length=length,
                severity=manifest.severity, category=manifest.category,
            )
    finally:
        database.close()
    return PublishedRelease(
        target=target,
        name=manifest.name,
        version=manifest.version,
        length=length,
        sha256=sha256,
        torrent_target=torrent_target,
        info_hash_v1=made.info_hash_v1,
        info_hash_v2=made.info_hash_v2,
        hash_seconds=hashed - started,
        torrent_seconds=torrent_seconds,
        web_seed=web_seed,
        tracker=tracker,
        public_url_set=bool(config.server.public_url),
    )
