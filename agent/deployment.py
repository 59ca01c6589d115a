"""Drive one deployment through the lifecycle, one journaled state at a time.

Each state has one step: it performs the state's action and journals the next state.
Because a state is journaled before its action runs, a daemon restarted after a crash
knows exactly what may have been in flight (`lifecycle.RECOVERY`) and continues from
there: an interrupted install is reverted, an interrupted snapshot is taken again.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import trio
from tuf.api.metadata import TargetFile

from agent import __version__
from agent.deployment_gate import AlwaysAllow, DeploymentGate
from agent.device_identity import DeviceIdentity
from agent.errors import (
    AgentError,
    DownloadError,
    MetadataError,
    PayloadVerificationError,
)
from agent.health_checks import run_health_checks
from agent.install_prefix import InstallPrefix
from agent.installers import installer_for
from agent.journal import Deployment, Journal
from agent.lifecycle import RECOVERY, TERMINAL, State
from agent.metadata_client import MetadataClient
from agent.peer_session import PeerSession
from agent.snapshots import FileTreeSnapshot, SnapshotManifest
from agent.state_dir import StateDir
from agent.wire.release import ReleaseInfo
from agent.wire.result import Outcome, ResultRecord, SignedResult

log = logging.getLogger(__name__)

OUTCOME_OF: dict[State, Outcome] = {
    State.COMMITTED: Outcome.INSTALLED,
    State.REVERTED: Outcome.REVERTED,
    State.REVERT_FAILED: Outcome.REVERT_FAILED,
    State.FAILED: Outcome.FAILED,
}


class RetryLater(Exception):
    """The deployment cannot progress now (no peers, hub unreachable); nothing changed."""


@dataclass
class DeploymentContext:
    """What a deployment needs from the daemon around it."""

    journal: Journal
    state_dir: StateDir
    identity: DeviceIdentity
    metadata: MetadataClient
    peers: PeerSession
    prefix: InstallPrefix
    hub_url: str
    web_seed_after: float
    download_timeout: float
    on_result: Callable[[], None] = lambda: None
    on_activity: Callable[[str], None] = lambda text: None
    snapshots: FileTreeSnapshot = field(default_factory=FileTreeSnapshot)
    gate: DeploymentGate = field(default_factory=AlwaysAllow)


def _stamp() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def start_deployment(journal: Journal, release: str, target: TargetFile) -> Deployment:
    """Journal a new deployment pinned to the signed target it will install."""
    info = ReleaseInfo.from_custom(target.custom, release)
    return journal.create(
        release, info.manifest.name, info.manifest.version, {"target": target.to_dict()}
    )


class DeploymentRun:
    def __init__(self, ctx: DeploymentContext, release: str) -> None:
        self.ctx = ctx
        self.release = release
        key = hashlib.sha256(release.encode()).hexdigest()[:16]
        self.snapshot_store = ctx.state_dir.snapshots / key
        self.workdir = ctx.state_dir.work / key
        self.download_dir = ctx.state_dir.downloads / key
        self._target: TargetFile | None = None
        self._info: ReleaseInfo | None = None

    # plumbing ------------------------------------------------------------------

    async def _journal(self, new_state: State, reason: str = "", **detail: Any) -> Deployment:
        detail[f"at_{new_state.value}"] = time.time()
        result = None
        if new_state in TERMINAL:
            result = self._result(new_state, reason, detail)
        # Called on the trio thread on purpose: one connection, strictly ordered writes.
        return self.ctx.journal.transition(
            self.release,
            new_state,
            reason,
            detail,
            result=result,
            installed=(self.info.manifest.name, self.info.manifest.version)
            if new_state is State.COMMITTED
            else None,
        )

    @property
    def deployment(self) -> Deployment:
        current = self.ctx.journal.get(self.release)
        assert current is not None
        return current

    @property
    def info(self) -> ReleaseInfo:
        assert self._info is not None
        return self._info

    def _result(self, state: State, reason: str, detail: dict[str, Any]) -> tuple[str, bytes]:
        merged = {**self.deployment.detail, **detail}

        def span(start: str, end: str) -> float | None:
            if start in merged and end in merged:
                return round(float(merged[end]) - float(merged[start]), 3)
            return None

        timings = {
            name: value
            for name, value in {
                "download_s": span("at_downloading", "at_verified"),
                "install_s": span("at_installing", "at_checking"),
                "health_s": span("at_checking", f"at_{state.value}"),
            }.items()
            if value is not None
        }
        record = ResultRecord(
            record_id=str(uuid.uuid4()),
            device_id=self.ctx.identity.device_id,
            release=self.release,
            name=self.info.manifest.name,
            version=self.info.manifest.version,
            outcome=OUTCOME_OF[state],
            reason=reason or str(merged.get("failure", "")),
            started_at=self.deployment.created_at,
            finished_at=_stamp(),
            timings=timings,
            bytes_from_peers=int(merged.get("bytes_from_peers", 0)),
            bytes_from_hub=int(merged.get("bytes_from_hub", 0)),
            agent_version=__version__,
        )
        return record.record_id, SignedResult.sign(record, self.ctx.identity.private_key).to_bytes()

    def _manifest(self) -> SnapshotManifest:
        return SnapshotManifest.from_json(self.deployment.detail["snapshot"])

    # the loop ----------------------------------------------------------------

    async def run(self) -> Deployment:
        """Advance until a terminal state, or raise RetryLater with nothing changed."""
        signed = self.deployment.detail["target"]
        self._target = TargetFile.from_dict(dict(signed), self.release)
        self._info = ReleaseInfo.from_custom(self._target.custom, self.release)
        state = RECOVERY.get(self.deployment.state, self.deployment.state)
        if state is not self.deployment.state:
            log.warning("%s: resuming after interruption in %s: continuing from %s",
                        self.release, self.deployment.state, state)
            await self._journal(state, f"resumed after interruption in {self.deployment.state}")
        steps: dict[State, Callable[[], Awaitable[State]]] = {
            State.PENDING: self._pending,
            State.SCHEDULED: self._scheduled,
            State.DOWNLOADING: self._downloading,
            State.VERIFIED: self._verified,
            State.SNAPSHOTTING: self._snapshotting,
            State.INSTALLING: self._installing,
            State.REBOOTING: self._rebooting,
            State.CHECKING: self._checking,
            State.REVERTING: self._reverting,
        }
        while state not in TERMINAL:
            self.ctx.on_activity(f"{state.value} {self.release}")
            state = await steps[state]()
        self.ctx.on_result()
        await self.ctx.gate.finished(self.release)
        self._cleanup()
        return self.deployment

    async def _pending(self) -> State:
        await self._journal(State.SCHEDULED)
        return State.SCHEDULED

    async def _scheduled(self) -> State:
        await self._journal(State.DOWNLOADING)
        return State.DOWNLOADING

    async def _downloading(self) -> State:
        assert self._target is not None
        try:
            torrent = await trio.to_thread.run_sync(
                self.ctx.metadata.download_small_target, self.info.torrent.path
            )
            self.download_dir.mkdir(parents=True, exist_ok=True)
            downloaded = await self.ctx.peers.download(
                torrent,
                self.download_dir,
                tracker_url=f"{self.ctx.hub_url}/announce",
                web_seed_url=f"{self.ctx.hub_url}/payloads/{self.release}",
                web_seed_after=self.ctx.web_seed_after,
                timeout=self.ctx.download_timeout,
            )
            await trio.to_thread.run_sync(
                self.ctx.metadata.verify_payload, downloaded.path, self._target
            )
        except PayloadVerificationError as exc:
            shutil.rmtree(self.download_dir, ignore_errors=True)
            await self._journal(State.FAILED, f"payload refused: {exc}")
            return State.FAILED
        except (DownloadError, MetadataError) as exc:
            await self._journal(State.SCHEDULED, f"download postponed: {exc}")
            raise RetryLater(str(exc)) from None
        await self._journal(
            State.VERIFIED,
            payload=str(downloaded.path),
            bytes_from_peers=downloaded.from_peers,
            bytes_from_hub=downloaded.from_hub,
        )
        return State.VERIFIED

    async def _verified(self) -> State:
        await self.ctx.gate.wait_for_install(self.release, self.info)
        await self._journal(State.SNAPSHOTTING)
        return State.SNAPSHOTTING

    async def _snapshotting(self) -> State:
        payload = Path(self.deployment.detail["payload"])
        installer = installer_for(self.info.manifest.install)
        try:
            paths = await trio.to_thread.run_sync(installer.planned_paths, payload, self.ctx.prefix)
        except AgentError as exc:
            await self._journal(State.FAILED, f"payload refused, nothing changed: {exc}")
            return State.FAILED
        try:
            shutil.rmtree(self.snapshot_store, ignore_errors=True)  # a partial one from a crash
            manifest = await trio.to_thread.run_sync(
                self.ctx.snapshots.take, paths, self.snapshot_store
            )
        except AgentError as exc:
            shutil.rmtree(self.snapshot_store, ignore_errors=True)
            await self._journal(State.FAILED, f"snapshot failed, nothing changed: {exc}")
            return State.FAILED
        await self._journal(State.INSTALLING, snapshot=manifest.to_json())
        return State.INSTALLING

    async def _installing(self) -> State:
        payload = Path(self.deployment.detail["payload"])
        installer = installer_for(self.info.manifest.install)
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            await installer.install(payload, self.ctx.prefix, self.workdir)
        except AgentError as exc:
            await self._journal(State.REVERTING, failure=f"install failed: {exc}")
            return State.REVERTING
        if self.info.manifest.reboot:
            # Reboots come with the crash-safe lifecycle; until then the checks run at once.
            log.warning("%s asks for a reboot; not supported yet, checking health now",
                        self.release)
        await self._journal(State.CHECKING)
        return State.CHECKING

    async def _rebooting(self) -> State:
        await self._journal(State.CHECKING)
        return State.CHECKING

    async def _checking(self) -> State:
        report = await run_health_checks(self.info.manifest.health, self.ctx.prefix)
        if not report.passed:
            await self._journal(State.REVERTING, failure=f"health check failed: {report.summary()}")
            return State.REVERTING
        await trio.to_thread.run_sync(self.ctx.snapshots.discard, self._manifest())
        await self._journal(State.COMMITTED, report.summary())
        return State.COMMITTED

    async def _reverting(self) -> State:
        payload = Path(self.deployment.detail["payload"])
        installer = installer_for(self.info.manifest.install)
        failure = str(self.deployment.detail.get("failure", "interrupted"))
        try:
            try:
                await installer.rollback(payload, self.ctx.prefix, self.workdir)
            except AgentError as exc:
                log.warning("%s: rollback program failed (%s); restoring the snapshot",
                            self.release, exc)
            manifest = self._manifest()
            await trio.to_thread.run_sync(self.ctx.snapshots.restore, manifest)
            await trio.to_thread.run_sync(self.ctx.snapshots.discard, manifest)
        except AgentError as exc:
            log.error("%s: REVERT FAILED: %s", self.release, exc)
            await self._journal(State.REVERT_FAILED, f"{failure}; revert failed: {exc}")
            return State.REVERT_FAILED
        await self._journal(State.REVERTED, failure)
        return State.REVERTED

    def _cleanup(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)
        if self.deployment.state is not State.REVERT_FAILED:
            shutil.rmtree(self.snapshot_store, ignore_errors=True)
