"""The hub's TUF repository: the signed metadata agents verify before installing anything.

Roles (DESIGN.md §3): root and targets are signed with the admin's offline keys; the
delegated `rollout` role (paths `rollouts/*`, terminating), snapshot and timestamp with the
hub's online keys. So publishing a release needs the offline release key, while changing
a rollout document or keeping timestamps fresh never does.

On disk the repository uses consistent snapshots, laid out exactly as python-tuf's
ngclient fetches it: `N.root.json` (plus `root.json`, the newest), `timestamp.json`,
`N.snapshot.json`, `N.targets.json`, `N.rollout.json` under HubDir.metadata, and every
target, payloads included, as `DIR/HASH.NAME` under HubDir.targets (hub/repository/target_files.py).

Guarantees:
- Every change is signed completely in memory before anything is written, so a missing
  key or failed signature leaves the disk as it was.
- `timestamp.json` is written last (and `root.json` last at `init`): it is the commit
  point. Newer versioned files written before a crash are unreferenced and harmless.
- Writers take an exclusive lock on `repository/.lock`, so `publish` and a running
  `serve` refreshing timestamps do not lose each other's versions.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import (
    DelegatedRole,
    Delegations,
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)

from agent.atomic_file import write_atomic
from agent.errors import TargetTooLargeError
from agent.target_size_caps import check_target_size
from hub.errors import PublishError, RepositoryError
from hub.hub_dir import HubDir
from hub.repository.metadata_signing import (
    ROLLOUT_ROLE,
    RepositoryState,
    consistent_target_name,
    load_state,
    metadata_file_name,
    serialize,
    sign,
    validate_target_path,
)
from hub.repository.offline_record import DEFAULT_TARGETS_EXPIRY_DAYS, OfflineRecord
from hub.repository.signing_keys import KeyStore
from hub.repository.target_files import consistent_paths, link_target, remove_links

logger = logging.getLogger(__name__)

ROLLOUT_PATHS = ["rollouts/*"]
TARGETS_EXPIRY_NOTICE = timedelta(days=3)
"""Warn this long before the offline-signed targets metadata expires."""
_HASH_CHUNK = 1024 * 1024


def utc_now() -> datetime:
    return datetime.now(UTC)


def _refuse_oversized(target_path: str, length: int) -> None:
    """Agents refuse a target above the cap of its kind (agent/target_size_caps.py):
    refuse to sign one, so the admin hears it now rather than from every device."""
    try:
        check_target_size(target_path, length)
    except TargetTooLargeError as exc:
        raise RepositoryError(f"{exc}; agents would refuse it, so it is not signed") from None


@dataclass(frozen=True)
class RepositoryExpiry:
    """How long each role's metadata stays valid after it is signed."""

    root: timedelta = timedelta(days=365)
    targets: timedelta = timedelta(days=DEFAULT_TARGETS_EXPIRY_DAYS)
    """The default; the admin's choice is `targets_expiry_days` in offline.toml."""
    rollout: timedelta = timedelta(days=30)
    snapshot: timedelta = timedelta(days=30)
    timestamp: timedelta = timedelta(days=1)


@dataclass(frozen=True)
class ReleaseTargetEntry:
    """One admin-signed target: a payload (served elsewhere, e.g. the web seed) or a small
    file agents fetch through TUF itself (`serve_via_tuf`, e.g. a .torrent).

    `known_hashes` (must include sha256) spares hashing a multi-GB payload twice when the
    caller has just hashed it; the length is then taken from the file's size.
    """

    target_path: str
    local_file: Path
    custom: dict[str, Any] | None = None
    serve_via_tuf: bool = False
    known_hashes: dict[str, str] | None = None


class HubRepository:
    """Reads and re-signs the repository under `hub_dir`; see the module docstring."""

    def __init__(
        self,
        hub_dir: HubDir,
        offline_keys_dir: Path | None = None,
        now: Callable[[], datetime] = utc_now,
        expiry: RepositoryExpiry | None = None,
    ) -> None:
        self.hub_dir = hub_dir
        self.keys = KeyStore(offline_keys_dir or hub_dir.offline_keys, hub_dir.online_keys)
        self._now = now
        self._expiry_given = expiry is not None
        self.expiry = expiry or RepositoryExpiry()

    # -- creating -------------------------------------------------------------------

    @classmethod
    def initialize(
        cls,
        hub_dir: HubDir,
        offline_keys_dir: Path | None = None,
        expiry: RepositoryExpiry | None = None,
        now: Callable[[], datetime] = utc_now,
    ) -> HubRepository:
        """Create all keys and version-1 metadata; refuses to touch an existing repository."""
        repo = cls(hub_dir, offline_keys_dir, now=now, expiry=expiry)
        if hub_dir.metadata.is_dir() and any(hub_dir.metadata.glob("*.json")):
            raise RepositoryError(
                f"{hub_dir.metadata} already holds TUF metadata; refusing to initialize over it"
            )
        roles = ("root", "targets", "snapshot", "timestamp", ROLLOUT_ROLE)
        new_keys = {role: repo.keys.create(role) for role in roles}
        signers = {role: signer for role, (signer, _) in new_keys.items()}

        root = Metadata(Root(expires=now() + repo.expiry.root, consistent_snapshot=True))
        for role in ("root", "targets", "snapshot", "timestamp"):
            root.signed.add_key(signers[role].public_key, role)
        rollout_key = signers[ROLLOUT_ROLE].public_key
        targets = Metadata(Targets())
        targets.signed.delegations = Delegations(
            keys={rollout_key.keyid: rollout_key},
            roles={
                ROLLOUT_ROLE: DelegatedRole(
                    ROLLOUT_ROLE, [rollout_key.keyid], 1, True, list(ROLLOUT_PATHS)
                )
            },
        )
        state = RepositoryState(
            root=root,
            targets=targets,
            rollout=Metadata(Targets()),
            snapshot=Metadata(Snapshot()),
            timestamp=Metadata(Timestamp()),
        )
        # Version 1 everywhere: sign as they are, without the usual bump.
        sign(root, signers["root"], now() + repo.expiry.root)
        sign(targets, signers["targets"], now() + repo.expiry.targets)  # = offline.toml's
        sign(state.rollout, signers[ROLLOUT_ROLE], now() + repo.expiry.rollout)
        files = repo._freshness_files(
            state,
            {"targets": serialize(targets), ROLLOUT_ROLE: serialize(state.rollout)},
            signers["snapshot"],
            signers["timestamp"],
            bump=False,
        )
        root_bytes = serialize(root)
        files.append((hub_dir.metadata / "1.root.json", root_bytes))
        files.append((hub_dir.metadata / "root.json", root_bytes))

        for role, (signer, pem) in new_keys.items():
            repo.keys.store(role, signer, pem)
        # What tokens pin and how long targets live: the admin's side, not the server's.
        OfflineRecord(hashlib.sha256(root_bytes).hexdigest(),
                      max(1, repo.expiry.targets.days)).write(repo.keys.offline_dir)
        hub_dir.targets.mkdir(parents=True, exist_ok=True)
        with repo._locked():
            repo._write(files)
        logger.info("initialized TUF repository in %s", hub_dir.repository)
        return repo

    # -- changing -------------------------------------------------------------------

    def add_release_targets(self, entries: list[ReleaseTargetEntry]) -> None:
        """Sign `entries` into top-level targets with the offline release key, then
        re-sign snapshot and timestamp. Small `serve_via_tuf` files are copied to the
        served targets directory under their consistent names; payloads are linked there
        (hub/repository/target_files.py) before the new metadata is written, and unlinked if
        writing it fails."""
        if not entries:
            raise RepositoryError("no release targets given")
        with self._locked():
            state = load_state(self.hub_dir.metadata)
            targets_signer = self.keys.load_expected(
                "targets", state.root.signed.roles["targets"].keyids
            )
            snapshot_signer, timestamp_signer = self._freshness_signers(state)
            files: list[tuple[Path, bytes]] = []
            payloads: list[tuple[Path, list[Path]]] = []
            for entry in entries:
                target_file, served = self._target_file(entry)
                state.targets.signed.targets[entry.target_path] = target_file
                paths = consistent_paths(
                    self.hub_dir.targets, entry.target_path, target_file.hashes
                )
                if served is not None:
                    files += [(path, served) for path in paths]
                else:
                    payloads.append((entry.local_file, paths))
            state.targets.signed.version += 1
            sign(state.targets, targets_signer, self._now() + self.targets_lifetime())
            files += self._freshness_files(
                state, {"targets": serialize(state.targets)}, snapshot_signer, timestamp_signer
            )
            links: list[Path] = []
            try:
                for local_file, paths in payloads:
                    links += link_target(local_file, paths)
                self._write(files)
            except BaseException:
                remove_links(links)
                raise
        logger.info(
            "signed %d release target(s) into targets v%d",
            len(entries),
            state.targets.signed.version,
        )

    def resign_targets(self) -> Metadata[Targets]:
        """Re-sign the targets metadata as it is, with a new version and expiry (now +
        the offline record's targets_expiry_days), then snapshot and timestamp. Needs
        the offline release key: `meisitong-hub targets resign` on the admin's side."""
        with self._locked():
            state = load_state(self.hub_dir.metadata)
            targets_signer = self.keys.load_expected(
                "targets", state.root.signed.roles["targets"].keyids
            )
            snapshot_signer, timestamp_signer = self._freshness_signers(state)
            state.targets.signed.version += 1
            sign(state.targets, targets_signer, self._now() + self.targets_lifetime())
            files = self._freshness_files(
                state, {"targets": serialize(state.targets)}, snapshot_signer, timestamp_signer
            )
            self._write(files)
        logger.info("re-signed targets v%d, expires %s", state.targets.signed.version,
                    state.targets.signed.expires.isoformat())
        return state.targets

    def set_rollout_document(self, target_path: str, data: bytes) -> None:
        """Publish one group's rollout document through the online `rollout` role.

        Only paths the delegation covers (`rollouts/NAME`, one segment) are accepted:
        anything else would be ignored by agents anyway, and must never look published.
        """
        validate_target_path(target_path)
        with self._locked():
            state = load_state(self.hub_dir.metadata)
            delegations = state.targets.signed.delegations
            roles = delegations.roles if delegations is not None else None
            role = roles.get(ROLLOUT_ROLE) if roles else None
            if role is None or not role.is_delegated_path(target_path):
                raise RepositoryError(
                    f"{target_path!r} is not a rollout document path: the rollout role may "
                    f"only sign {ROLLOUT_PATHS}"
                )
            rollout_signer = self.keys.load_expected(ROLLOUT_ROLE, role.keyids)
            snapshot_signer, timestamp_signer = self._freshness_signers(state)
            _refuse_oversized(target_path, len(data))
            target_file = TargetFile.from_data(target_path, data, ["sha256"])
            state.rollout.signed.targets[target_path] = target_file
            state.rollout.signed.version += 1
            sign(state.rollout, rollout_signer, self._now() + self.expiry.rollout)
            name = consistent_target_name(target_path, target_file.hashes["sha256"])
            files = [(self.hub_dir.targets / name, data)]
            files += self._freshness_files(
                state, {ROLLOUT_ROLE: serialize(state.rollout)}, snapshot_signer, timestamp_signer
            )
            self._write(files)
        logger.info("published %s in rollout v%d", target_path, state.rollout.signed.version)

    def set_rollout_documents(self, documents: dict[str, bytes]) -> None:
        """Publish several groups' rollout documents in one rollout version, so a change
        that touches more than one group (a rollout with pilot groups) is seen whole or
        not at all. Same checks as `set_rollout_document`."""
        if not documents:
            raise RepositoryError("no rollout documents given")
        for target_path in documents:
            validate_target_path(target_path)
        with self._locked():
            state = load_state(self.hub_dir.metadata)
            delegations = state.targets.signed.delegations
            roles = delegations.roles if delegations is not None else None
            role = roles.get(ROLLOUT_ROLE) if roles else None
            refused = [path for path in documents
                       if role is None or not role.is_delegated_path(path)]
            if role is None or refused:
                raise RepositoryError(
                    f"{', '.join(map(repr, refused))} not rollout document paths: the "
                    f"rollout role may only sign {ROLLOUT_PATHS}"
                )
            rollout_signer = self.keys.load_expected(ROLLOUT_ROLE, role.keyids)
            snapshot_signer, timestamp_signer = self._freshness_signers(state)
            files: list[tuple[Path, bytes]] = []
            for target_path, data in documents.items():
                _refuse_oversized(target_path, len(data))
                target_file = TargetFile.from_data(target_path, data, ["sha256"])
                state.rollout.signed.targets[target_path] = target_file
                name = consistent_target_name(target_path, target_file.hashes["sha256"])
                files.append((self.hub_dir.targets / name, data))
            state.rollout.signed.version += 1
            sign(state.rollout, rollout_signer, self._now() + self.expiry.rollout)
            files += self._freshness_files(
                state, {ROLLOUT_ROLE: serialize(state.rollout)}, snapshot_signer, timestamp_signer
            )
            self._write(files)
        logger.info("published %s in rollout v%d", ", ".join(documents),
                    state.rollout.signed.version)

    def refresh_timestamp(self, force: bool = False) -> bool:
        """Re-sign what is in its second half of life with the online keys.

        The timestamp is re-signed when due (or `force`); the snapshot and the rollout
        role when they are due too, so a long-running `serve` keeps agents working
        without an admin. Returns whether anything was re-signed. Offline roles cannot
        be renewed here; their approaching expiry is logged as a warning.
        """
        with self._locked():
            state = load_state(self.hub_dir.metadata)
            now = self._now()

            def due(md: Metadata[Any], lifetime: timedelta) -> bool:
                return md.signed.expires - now <= lifetime / 2

            for md, name, notice in ((state.root, "root", timedelta(days=30)),
                                     (state.targets, "targets", TARGETS_EXPIRY_NOTICE)):
                if md.signed.expires - now <= notice:
                    logger.warning(
                        "%s metadata expires at %s; an admin must re-sign it offline",
                        name,
                        md.signed.expires.isoformat(),
                    )
            rollout_due = due(state.rollout, self.expiry.rollout)
            snapshot_due = rollout_due or due(state.snapshot, self.expiry.snapshot)
            if not (force or snapshot_due or due(state.timestamp, self.expiry.timestamp)):
                return False
            snapshot_signer, timestamp_signer = self._freshness_signers(state)
            changed: dict[str, bytes] = {}
            if rollout_due:
                delegated = state.targets.signed.get_delegated_role(ROLLOUT_ROLE)
                rollout_signer = self.keys.load_expected(ROLLOUT_ROLE, delegated.keyids)
                state.rollout.signed.version += 1
                sign(state.rollout, rollout_signer, now + self.expiry.rollout)
                changed[ROLLOUT_ROLE] = serialize(state.rollout)
            files = self._freshness_files(
                state,
                changed,
                snapshot_signer,
                timestamp_signer,
                resign_snapshot=snapshot_due,
            )
            self._write(files)
        logger.info("re-signed timestamp v%d", state.timestamp.signed.version)
        return True

    def set_timestamp_field(self, name: str, value: Any) -> bool:
        """Carry `value` under `name` in the signed timestamp (an extra field: python-tuf
        keeps it as `unrecognized_fields`, every later re-signing keeps it, standard
        clients ignore it). Re-signs the timestamp only if the value changed; returns
        whether it did. The audit chain's head travels this way (hub/audit/anchor.py)."""
        with self._locked():
            state = load_state(self.hub_dir.metadata)
            if state.timestamp.signed.unrecognized_fields.get(name) == value:
                return False
            snapshot_signer, timestamp_signer = self._freshness_signers(state)
            state.timestamp.signed.unrecognized_fields[name] = value
            files = self._freshness_files(state, {}, snapshot_signer, timestamp_signer,
                                          resign_snapshot=False)
            self._write(files)
        logger.info("re-signed timestamp v%d with a new %s", state.timestamp.signed.version,
                    name)
        return True

    # -- reading --------------------------------------------------------------------

    def release_targets(self) -> dict[str, TargetFile]:
        return dict(load_state(self.hub_dir.metadata).targets.signed.targets)

    def rollout_targets(self) -> dict[str, TargetFile]:
        return dict(load_state(self.hub_dir.metadata).rollout.signed.targets)

    def root_bytes(self) -> bytes:
        """The newest root metadata, byte for byte as served."""
        return self._served_metadata("root.json")

    def root_sha256(self) -> str:
        return hashlib.sha256(self.root_bytes()).hexdigest()

    def root_v1_bytes(self) -> bytes:
        """The first root metadata as served: enrollment starts from it and chains on."""
        return self._served_metadata("1.root.json")

    def _served_metadata(self, name: str) -> bytes:
        path = self.hub_dir.metadata / name
        try:
            return path.read_bytes()
        except OSError as exc:
            raise RepositoryError(f"cannot read {path}: {exc.strerror}") from None

    def targets_lifetime(self) -> timedelta:
        """How long newly signed targets metadata stays valid: the admin's choice in
        offline.toml (beside the offline keys), else the default."""
        if self._expiry_given or not OfflineRecord.path(self.keys.offline_dir).exists():
            return self.expiry.targets
        return timedelta(days=OfflineRecord.load(self.keys.offline_dir).targets_expiry_days)

    # -- internals ------------------------------------------------------------------

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.hub_dir.repository.mkdir(parents=True, exist_ok=True)
        with open(self.hub_dir.repository / ".lock", "a+b") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def _freshness_signers(self, state: RepositoryState) -> tuple[CryptoSigner, CryptoSigner]:
        roles = state.root.signed.roles
        return (
            self.keys.load_expected("snapshot", roles["snapshot"].keyids),
            self.keys.load_expected("timestamp", roles["timestamp"].keyids),
        )

    def _freshness_files(
        self,
        state: RepositoryState,
        changed: dict[str, bytes],
        snapshot_signer: CryptoSigner,
        timestamp_signer: CryptoSigner,
        bump: bool = True,
        resign_snapshot: bool = True,
    ) -> list[tuple[Path, bytes]]:
        """Sign a snapshot listing the `changed` roles' new bytes (if any role changed or
        `resign_snapshot`) and a timestamp for it; return the files, timestamp last.
        `bump=False` is for `init`: everything stays at version 1."""
        metadata_dir = self.hub_dir.metadata
        files: list[tuple[Path, bytes]] = []
        for role, data in changed.items():
            md = state.targets if role == "targets" else state.rollout
            version = md.signed.version
            files.append((metadata_dir / metadata_file_name(role, version), data))
            state.snapshot.signed.meta[f"{role}.json"] = MetaFile.from_data(
                version, data, ["sha256"]
            )
        if changed or resign_snapshot or not bump:
            if bump:
                state.snapshot.signed.version += 1
            sign(state.snapshot, snapshot_signer, self._now() + self.expiry.snapshot)
            snapshot_bytes = serialize(state.snapshot)
            version = state.snapshot.signed.version
            files.append((metadata_dir / metadata_file_name("snapshot", version), snapshot_bytes))
            state.timestamp.signed.snapshot_meta = MetaFile.from_data(
                version, snapshot_bytes, ["sha256"]
            )
        if bump:
            state.timestamp.signed.version += 1
        sign(state.timestamp, timestamp_signer, self._now() + self.expiry.timestamp)
        files.append((metadata_dir / "timestamp.json", serialize(state.timestamp)))
        return files

    def _target_file(self, entry: ReleaseTargetEntry) -> tuple[TargetFile, bytes | None]:
        """The TargetFile for `entry`, and its bytes if they are to be served through TUF.

        Served files are read once and hashed from memory, so what is signed is exactly
        what is served. Payloads are hashed streaming: they can be gigabytes.
        """
        validate_target_path(entry.target_path)
        if entry.target_path.startswith("rollouts/"):
            raise RepositoryError(
                f"{entry.target_path!r}: rollouts/ belongs to the online rollout role, "
                "not to release targets"
            )
        custom = {"custom": entry.custom} if entry.custom is not None else None
        try:
            if entry.serve_via_tuf:
                data = entry.local_file.read_bytes()
                _refuse_oversized(entry.target_path, len(data))
                target = TargetFile.from_data(entry.target_path, data, ["sha256"])
                target.unrecognized_fields = custom or {}
                return target, data
            if entry.known_hashes is not None:
                if "sha256" not in entry.known_hashes:
                    raise RepositoryError(f"{entry.target_path}: known_hashes lacks sha256")
                hashes = {"sha256": entry.known_hashes["sha256"], **entry.known_hashes}
                length = entry.local_file.stat().st_size
            else:
                length, digest = 0, hashlib.sha256()
                with open(entry.local_file, "rb") as payload:
                    while chunk := payload.read(_HASH_CHUNK):
                        length += len(chunk)
                        digest.update(chunk)
                hashes = {"sha256": digest.hexdigest()}
        except OSError as exc:
            raise PublishError(
                f"cannot read {entry.local_file} for target {entry.target_path}: {exc.strerror}"
            ) from None
        return TargetFile(length, hashes, entry.target_path, custom), None

    def _write(self, files: list[tuple[Path, bytes]]) -> None:
        for path, data in files:
            write_atomic(path, data)
