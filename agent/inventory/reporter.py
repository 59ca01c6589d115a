"""The daemon's inventory task: a record on start, on change, and every `interval`.

Every `check_interval` it takes a cheap look (`collector.change_marker`: a stat of
dpkg's status file, the kernel, the journal's installed releases). When that moved, on
start, or when a record is due, it runs the probe (a child process) and, if what it
found differs from the last record (free disk space aside) or a record is due, builds
the next one (full, or a diff against the last full: agent/inventory/records.py), signs
it with the device key, writes it to its state file *before* anything leaves, hands it
to site gossip, and posts it to the hub.

Hub answers: 201/200 taken; 409 (the hub lacks the diff's base) or 422 (the diff did not
give its digest) make the next record a full one at the next look, spacing or not (the
hub asked); another 4xx is refused for good (logged); unreachable or a 5xx keeps the
record pending, posted again every RETRY_SECONDS at most, while gossip may carry it
meanwhile. Two records are never built closer than `min_spacing` apart, except a full
one the hub asked for, so a flapping package list cannot flood anyone.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import trio
import urllib3

from agent.atomic_file import write_private
from agent.config import InventorySection
from agent.device_identity import DeviceIdentity
from agent.errors import InventoryError
from agent.hub_client import post_json, refused_for_good
from agent.inventory.collector import change_marker, collect
from agent.journal import Journal
from agent.wire.inventory import SOFTWARE_DIFF_KEY, SOFTWARE_FULL_KEY, SignedInventory

log = logging.getLogger(__name__)

RETRY_SECONDS = 60.0


@dataclass
class ReporterState:
    """What `inventory.json` keeps across restarts."""

    sequence: int = 0
    built_at: float = 0.0
    fingerprint: str = ""
    marker: str = ""
    pending: str = ""
    """The last record built, until the hub took it (or refused it for good)."""
    need_full: bool = False

    @classmethod
    def load(cls, path: Path) -> ReporterState:
        try:
            return cls(**json.loads(path.read_bytes()))
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError, TypeError) as exc:
            log.warning("%s unreadable (%s): the next inventory record is a full one", path, exc)
            return cls()

    def save(self, path: Path) -> None:
        write_private(path, json.dumps(asdict(self)).encode("utf-8"))


class InventoryReporter:
    def __init__(self, settings: InventorySection, state_path: Path, identity: DeviceIdentity,
                 journal: Journal, hub_url: str, timeout: float, disk: Path,
                 publish: Callable[[str, str], None] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.state_path = state_path
        self.identity = identity
        self.journal = journal
        self.hub_url = hub_url.rstrip("/")
        self.timeout = timeout
        self.disk = disk
        self.publish = publish
        """Hands a built record to site gossip: (gossip key, signed record JSON)."""
        self.clock = clock
        self.base_path = state_path.with_name(state_path.stem + "-base.json")
        """The last full record built (signed): what diffs apply to. A file the probe
        reads, so the daemon holds no package list."""
        self.state = ReporterState.load(state_path)
        self._started = False
        self._last_attempt = 0.0
        self._built = "record"

    async def run(self) -> None:
        while True:
            try:
                await self.step()
            except InventoryError as exc:
                log.warning("inventory: %s (tried again at the next look)", exc)
            except Exception:  # noqa: BLE001 - nothing here may end the daemon
                log.exception("inventory look failed unexpectedly; the next one comes as planned")
            await trio.sleep(self.settings.check_interval)

    async def step(self) -> str:
        """One look; returns what it did (for logs and tests)."""
        now = self.clock()
        state = self.state
        releases = [tuple(row) for row in self.journal.installed_releases()]
        marker = change_marker(self.settings, releases)  # type: ignore[arg-type]
        due = now - state.built_at >= self.settings.interval
        if not (due or state.need_full or not self._started or marker != state.marker):
            return await self._retry_pending(now)
        if not state.need_full and now - state.built_at < self.settings.min_spacing:
            return await self._retry_pending(now) if state.pending else "spacing"
        sequence = max(state.sequence + 1, int(now * 1000))
        base = None if state.need_full or not self.base_path.exists() else self.base_path
        fingerprint, record = await collect(
            self.settings, self.disk, releases, self.identity.device_id,  # type: ignore[arg-type]
            sequence, datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds"), base)
        first_look, self._started = not self._started, True
        state.marker = marker
        if fingerprint == state.fingerprint and not (due or state.need_full):
            state.save(self.state_path)
            if first_look and state.pending:
                return await self._retry_pending(now)
            return "unchanged"
        body = SignedInventory.sign(record, self.identity.private_key).to_bytes().decode()
        state.sequence, state.fingerprint, state.built_at, state.pending = (
            sequence, fingerprint, now, body)
        if record.kind == "full":
            write_private(self.base_path, body.encode("utf-8"))
            state.need_full = False
        state.save(self.state_path)  # before it leaves: a sequence is never used twice
        log.info("inventory %d: %s record, %d packages, %d bytes", record.sequence,
                 record.kind, record.package_count, len(body))
        self._built = (f"record {record.sequence} ({record.kind}, {record.package_count} "
                       "packages)")
        if self.publish is not None:
            self.publish(SOFTWARE_FULL_KEY if record.kind == "full" else SOFTWARE_DIFF_KEY,
                         body)
        return f"built {record.kind}; " + await self._deliver(now)

    async def _retry_pending(self, now: float) -> str:
        if not self.state.pending:
            return "nothing due"
        if now - self._last_attempt < max(RETRY_SECONDS, self.settings.check_interval):
            return "pending"
        return await self._deliver(now)

    async def _deliver(self, now: float) -> str:
        outcome = await self._post(now)
        self.journal.set_status("inventory", f"{self._built}: {outcome} at "
                                f"{datetime.fromtimestamp(now, UTC).isoformat(timespec='seconds')}")
        return outcome

    async def _post(self, now: float) -> str:
        self._last_attempt = now
        body = self.state.pending.encode("utf-8")
        try:
            status, answer = await trio.to_thread.run_sync(
                post_json, f"{self.hub_url}/api/v1/inventory", body, self.timeout, 4096,
                abandon_on_cancel=True)
        except urllib3.exceptions.HTTPError as exc:
            log.info("inventory waits: cannot reach the hub: %s", exc or type(exc).__name__)
            return "hub unreachable"
        if status in (200, 201):
            outcome = "taken"
        elif status in (409, 422):
            self.state.need_full = True
            outcome = f"hub asks for a full record (HTTP {status})"
            log.info("inventory: %s: %s", outcome, answer[:300].decode("utf-8", "replace"))
        elif refused_for_good(status):
            outcome = f"refused (HTTP {status})"
            log.error("hub refused this device's inventory (HTTP %d): %s", status,
                      answer[:300].decode("utf-8", "replace"))
        else:
            return f"hub answered HTTP {status}"
        self.state.pending = ""
        self.state.save(self.state_path)
        return outcome
