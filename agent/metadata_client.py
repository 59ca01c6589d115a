"""The agent's side of TUF: refresh the hub's signed metadata and verify what it names.

Nothing is installed unless it passes through here. Every python-tuf failure (bad
signature, rollback, freeze, mix-and-match, endless data, unreachable hub) becomes one
`agent.errors.MetadataError` whose message says what was refused and why, keeping the
original exception's type and text.

Trust starts from the root the device was enrolled with (its SHA-256 was in the
enrollment token). That root is always the `bootstrap`: ngclient then walks the root
history it persisted (`metadata_dir/root_history/N.root.json`), verifying each rotation
against the previous root, so rotations survive restarts while a file planted as
`root.json` can never become the trust anchor on its own say-so.

A poll costs one small request while nothing changed: when the hub's timestamp.json is
byte for byte the one this device already trusts, and nothing trusted has expired, the
chain (root N+1, signature checks of every role) is skipped and the last verified state
kept (`refresh` returns False). Skipping is sound because every change to what the hub
signs changes the snapshot, so the timestamp; equal bytes from any source (hub or a
relaying peer) are the trusted timestamp itself. A new root published without a new
timestamp is seen by the next full refresh, at the latest `full_refresh_every` seconds
after the last one (and at every daemon start).

Sync API (python-tuf is sync): call it through `trio.to_thread.run_sync`. Like ngclient,
one instance is for one agent process; not for concurrent use.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, NoReturn
from urllib import parse

from tuf.api import exceptions as tuf_errors
from tuf.api.metadata import Metadata, Root, TargetFile
from tuf.api.serialization import DeserializationError
from tuf.ngclient import FetcherInterface, Updater, Urllib3Fetcher
from urllib3.exceptions import NewConnectionError

from agent.errors import MetadataError, PayloadVerificationError, TargetNotFoundError
from agent.target_size_caps import check_target_size
from agent.wire.audit_head import AuditHead, audit_head_in
from agent.wire.rollout import rollout_target_path

logger = logging.getLogger(__name__)

_CHUNK = 1024 * 1024
_TIMESTAMP_MAX_LENGTH = 16384  # ngclient's default bound for timestamp.json
FULL_REFRESH_EVERY = 3600.0
"""Seconds after which a refresh runs the whole chain even if the timestamp is unchanged."""


class _RecordingFetcher(FetcherInterface):
    """Delegates to the real fetcher and remembers the last metadata it fetched, so an
    error can name the file and, for expiry, the date it expired."""

    def __init__(self, inner: FetcherInterface) -> None:
        self._inner = inner
        self.last_url: str | None = None
        self.last_metadata: bytes | None = None

    def _fetch(self, url: str) -> Iterator[bytes]:
        self.last_url = url
        return self._inner.fetch(url)

    def download_bytes(self, url: str, max_length: int) -> bytes:
        self.last_url = url
        data = self._inner.download_bytes(url, max_length)
        self.last_metadata = data
        return data

    @contextmanager
    def download_file(self, url: str, max_length: int) -> Iterator[IO[bytes]]:
        self.last_url = url
        with self._inner.download_file(url, max_length) as downloaded:
            yield downloaded


class MetadataClient:
    """Verified access to the hub's release targets and rollout documents."""

    def __init__(
        self,
        metadata_dir: Path,
        targets_dir: Path,
        hub_url: str,
        trusted_root: bytes,
        fetcher: FetcherInterface | None = None,
        full_refresh_every: float = FULL_REFRESH_EVERY,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        try:
            root = Metadata.from_bytes(trusted_root)
        except DeserializationError as exc:
            raise MetadataError(f"the enrolled trusted root is not TUF metadata: {exc}") from exc
        if not isinstance(root.signed, Root):
            raise MetadataError(f"the enrolled trusted root is {root.signed.type} metadata")
        self.metadata_dir = Path(metadata_dir)
        self.targets_dir = Path(targets_dir)
        self.hub_url = hub_url.rstrip("/")
        self._trusted_root = trusted_root
        self._fetcher = _RecordingFetcher(fetcher or Urllib3Fetcher())
        self._updater: Updater | None = None
        self._full_refresh_every = full_refresh_every
        self._now = now
        self._last_full_refresh = -float("inf")
        self.full_refreshes = 0
        """How many times the whole chain ran (tests, benchmarks)."""

    def refresh(self) -> bool:
        """Fetch and verify root → timestamp → snapshot → targets from the hub; or,
        if the hub's timestamp is the trusted one and nothing trusted has expired, keep
        the last verified state. True if the chain ran, False if it was skipped.

        A fresh ngclient Updater for each full refresh: an Updater refreshes only once,
        and each refresh must start from what this device already trusts.
        """
        if self._unchanged_since_last_refresh():
            return False
        self.metadata_dir.mkdir(parents=True, exist_ok=True)
        self.targets_dir.mkdir(parents=True, exist_ok=True)
        self._updater = None
        with self._translated("refreshing metadata"):
            updater = Updater(
                metadata_dir=str(self.metadata_dir),
                metadata_base_url=f"{self.hub_url}/metadata/",
                target_dir=str(self.targets_dir),
                target_base_url=f"{self.hub_url}/targets/",
                fetcher=self._fetcher,
                bootstrap=self._trusted_root,
            )
            updater.refresh()
        self._updater = updater
        self._last_full_refresh = time.monotonic()
        self.full_refreshes += 1
        return True

    def _unchanged_since_last_refresh(self) -> bool:
        """Whether the last verified state still holds: the hub serves the timestamp this
        device trusts, byte for byte, and no role this client trusts has expired. Any
        doubt (no state yet, a failed request, a change) means False: run the chain."""
        updater = self._updater
        if updater is None:
            return False
        if time.monotonic() - self._last_full_refresh >= self._full_refresh_every:
            return False
        try:
            trusted = (self.metadata_dir / "timestamp.json").read_bytes()
            served = self._fetcher.download_bytes(
                f"{self.hub_url}/metadata/timestamp.json", _TIMESTAMP_MAX_LENGTH
            )
        except (tuf_errors.DownloadError, OSError):
            return False
        if served != trusted:
            return False
        now = self._now()
        # ngclient's verified roles; a private attribute, so its absence means "check".
        roles = getattr(updater, "_trusted_set", None)
        return roles is not None and not any(role.is_expired(now) for role in roles)

    def audit_head(self) -> AuditHead | None:
        """The hub's audit-chain head as the trusted timestamp carries it, for the
        heartbeat to witness (agent/wire/audit_head.py); None if there is none yet.
        Reads the file ngclient persists only after verifying it, so it is safe to call
        from another thread than the one refreshing."""
        try:
            timestamp = Metadata.from_bytes((self.metadata_dir / "timestamp.json").read_bytes())
        except (OSError, DeserializationError):
            return None
        return audit_head_in(timestamp.signed.unrecognized_fields)

    def release_target(self, path: str) -> TargetFile:
        """The admin-signed target at `path`. Paths under `rollouts/` are refused: only
        the hub's online key vouches for those, never for something to install."""
        if path.startswith("rollouts/"):
            raise TargetNotFoundError(f"{path} is a rollout document path, not a release")
        target = self._targetinfo(path)
        if target is None:
            raise TargetNotFoundError(f"the signed metadata lists no release target {path}")
        return target

    def rollout_document(self, group: str) -> bytes | None:
        """The verified rollout document of `group`, or None if the hub publishes none."""
        target = self._targetinfo(rollout_target_path(group))
        return None if target is None else self._download(target)

    def download_small_target(self, path: str) -> bytes:
        """Download and verify a small target (e.g. a .torrent) through TUF, into memory,
        if its signed length fits the cap of its kind (agent/target_size_caps.py)."""
        target = self._targetinfo(path)
        if target is None:
            raise TargetNotFoundError(f"the signed metadata lists no target {path}")
        return self._download(target)

    def verify_payload(self, file: Path, target: TargetFile) -> None:
        """Check a payload fetched outside TUF (BitTorrent, web seed) against its signed
        length and hashes, streaming: payloads can be gigabytes."""
        digests: dict[str, Any] = {}
        try:
            for algorithm in target.hashes:
                digests[algorithm] = hashlib.new(algorithm)
        except ValueError:
            raise PayloadVerificationError(
                f"{file}: target {target.path} uses an unsupported hash algorithm "
                f"({', '.join(target.hashes)})"
            ) from None
        length = 0
        try:
            with open(file, "rb") as payload:
                while chunk := payload.read(_CHUNK):
                    length += len(chunk)
                    if length > target.length:
                        break
                    for digest in digests.values():
                        digest.update(chunk)
        except OSError as exc:
            raise PayloadVerificationError(f"{file}: cannot read: {exc.strerror}") from None
        if length != target.length:
            actual = f"{length}" if length <= target.length else f"more than {target.length}"
            raise PayloadVerificationError(
                f"{file}: length {actual} bytes, but target {target.path} is signed with "
                f"length {target.length}"
            )
        for algorithm, digest in digests.items():
            if digest.hexdigest() != target.hashes[algorithm]:
                raise PayloadVerificationError(
                    f"{file}: {algorithm} {digest.hexdigest()}, but target {target.path} is "
                    f"signed with {algorithm} {target.hashes[algorithm]}"
                )

    # -- internals ------------------------------------------------------------------

    def _current_updater(self) -> Updater:
        """The Updater of the last successful refresh; refreshes first if there is none."""
        if self._updater is None:
            self.refresh()
        if self._updater is None:  # refresh() raises rather than leave this unset
            raise MetadataError("metadata was not refreshed")
        return self._updater

    def _targetinfo(self, path: str) -> TargetFile | None:
        updater = self._current_updater()
        with self._translated(f"looking up target {path}"):
            return updater.get_targetinfo(path)

    def _download(self, target: TargetFile) -> bytes:
        check_target_size(target.path, target.length)  # before a byte is fetched
        updater = self._current_updater()
        with self._translated(f"downloading target {target.path}"):
            cached = updater.find_cached_target(target)
            path = cached or updater.download_target(target)
            return Path(path).read_bytes()

    @contextmanager
    def _translated(self, action: str) -> Iterator[None]:
        try:
            yield
        except (tuf_errors.RepositoryError, tuf_errors.DownloadError, OSError) as exc:
            self._raise_metadata_error(action, exc)

    def _raise_metadata_error(self, action: str, exc: Exception) -> NoReturn:
        original = f"({type(exc).__name__}: {exc})" if str(exc) else f"({type(exc).__name__})"
        source = f"; last fetched {self._fetcher.last_url}" if self._fetcher.last_url else ""
        raise MetadataError(f"{action}: {self._explain(exc)} {original}{source}") from exc

    def _explain(self, exc: Exception) -> str:
        """What the python-tuf failure means for an operator, in one sentence."""
        text = str(exc)
        if isinstance(exc, tuf_errors.ExpiredMetadataError):
            return self._explain_expiry(text)
        if isinstance(exc, tuf_errors.BadVersionNumberError):
            return _explain_version(text)
        if isinstance(exc, tuf_errors.UnsignedMetadataError):
            match = re.match(r"(\S+) was signed by (\d+)/(\d+) keys", text)
            if match:
                role, signed, threshold = match.groups()
                return (
                    f"signature of {role} does not verify: signed by {signed} of the "
                    f"{threshold} trusted keys it needs"
                )
            return "a signature does not verify"
        if isinstance(exc, tuf_errors.LengthOrHashMismatchError):
            return (
                "a file does not match the length and hash its signed metadata gives "
                "(tampered or mixed-up file)"
            )
        if isinstance(exc, tuf_errors.DownloadLengthMismatchError):
            return "the hub sent more data than the signed metadata allows (endless data)"
        if isinstance(exc, tuf_errors.DownloadError) and _connection_failed(exc):
            # urllib3 reports a refused connection as a timeout, so ngclient calls it
            # slow retrieval; an operator needs to hear "unreachable".
            return f"cannot connect to the hub at {self.hub_url}"
        if isinstance(exc, tuf_errors.SlowRetrievalError):
            return "the download was too slow and was abandoned"
        if isinstance(exc, tuf_errors.DownloadHTTPError):
            return f"the hub answered HTTP {exc.status_code}"
        if isinstance(exc, tuf_errors.DownloadError):
            return f"could not download from {self.hub_url}"
        if isinstance(exc, OSError):
            return f"cannot write the local metadata cache in {self.metadata_dir}"
        return "metadata failed to verify"

    def _explain_expiry(self, text: str) -> str:
        match = re.match(r"(?:Final |New )?(\w+)(?:\.json)? is expired", text)
        role = match.group(1) if match else "metadata"
        expires = self._last_expiry(role)
        when = f" at {expires}" if expires else ""
        return f"{role} metadata expired{when}: the hub is not keeping it fresh (or replays it)"

    def _last_expiry(self, role: str) -> str | None:
        """The expiry date of `role` in the last fetched metadata (or the trusted root)."""
        data = self._fetcher.last_metadata
        url = self._fetcher.last_url or ""
        if role != "root" and not parse.unquote(url).endswith(f"{role}.json"):
            return None
        try:
            if role == "root":
                data = (self.metadata_dir / "root.json").read_bytes()
            return Metadata.from_bytes(data or b"").signed.expires.isoformat()
        except (DeserializationError, OSError):
            return None


def _connection_failed(exc: BaseException) -> bool:
    """Whether a connection could not be made at all, somewhere down the cause chain."""
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return False
        if isinstance(seen, NewConnectionError | ConnectionError):
            return True
        reason = getattr(seen, "reason", None)
        if isinstance(reason, NewConnectionError | ConnectionError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _explain_version(text: str) -> str:
    """Name the versions involved; ngclient's texts differ per check."""
    patterns: list[tuple[str, str]] = [
        (
            r"New (\w+) version (\d+) must be >= (\d+)",
            "{0} version {1} is older than the trusted {2}: possible rollback attack",
        ),
        (
            r"New snapshot version must be >= (\d+), got version (\d+)",
            "timestamp lists snapshot version {1}, older than the trusted {0}: possible "
            "rollback attack",
        ),
        (
            # ngclient words this one "Expected FILE version NEW, got TRUSTED."
            r"Expected (\S+)\.json version (\d+), got (\d+)\.",
            "snapshot lists {0} version {1}, older than the trusted {2}: possible rollback attack",
        ),
    ]
    for pattern, message in patterns:
        match = re.match(pattern, text)
        if match:
            return message.format(*match.groups())
    return (
        "a metadata version is not the one the signed metadata above it expects: possible "
        "rollback or mix-and-match attack"
    )
