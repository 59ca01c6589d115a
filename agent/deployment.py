"""Drive one deployment through the lifecycle, one journaled state at a time.

Each state has one step: it performs the state's action and says how it ended
(`StepEnd`); the runner alone journals the next state `lifecycle.NEXT_STATE` names for
that ending, and only then runs the next step, so a state is on disk before its action
by structure (journal before act). A daemon restarted after a crash
knows exactly what may have been in flight and continues from where
`lifecycle.resume_state` says: an interrupted snapshot is taken again, an interrupted
install is run again (idempotent installers) or reverted, a reboot that happened leads
to the checks, a release that keeps the agent from passing its checks is reverted.

Pairs of action and undo, both rerunnable: snapshot / discard, install / rollback +
restore. A revert is verified before it is called reverted; one that cannot be verified
ends in revert-failed, which blocks further installs until `meisitong-agent clear`.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio
from tuf.api.metadata import TargetFile

from agent.crash_points import CrashPoints, crash_points
from agent.deployment_files import deployment_key, finish_cleanup
from agent.deployment_gate import AlwaysAllow, DeploymentGate
from agent.deployment_result import signed_result
from agent.deployment_supersede import superseded_reason
from agent.device_identity import DeviceIdentity
from agent.disk_space import SpaceNeed, check_free_space, tree_bytes
from agent.errors import (
    AgentError,
    DiskSpaceError,
    DownloadError,
    MetadataError,
    PayloadVerificationError,
    ReadinessError,
)
from agent.health_checks import run_health_checks
from agent.health_signals import measure_window
from agent.install_prefix import InstallPrefix
from agent.installers import Installer, installer_for
from agent.journal import Deployment, Journal
from agent.lifecycle import (
    BEFORE_INSTALL,
    LOOP_COUNTED,
    NEXT_STATE,
    REPORTS,
    TERMINAL,
    ResumeFacts,
    State,
    StepOutcome,
    resume_state,
    starts_key,
)
from agent.metadata_client import MetadataClient
from agent.on_demand_peers import OnDemandPeerSession
from agent.reboot import RebootAdapter, SystemReboot
from agent.snapshots import (
    FileTreeSnapshot,
    SnapshotBackend,
    SnapshotManifest,
    backend_for_manifest,
    backend_for_paths,
)
from agent.state_dir import StateDir
from agent.verified_download import fetch_verified_payload
from agent.wire.health_signals import SignalWindow
from agent.wire.release import FileTreeInstall, ReleaseInfo
from agent.wire.result import Outcome

log = logging.getLogger(__name__)


class RetryLater(Exception):
    """The deployment cannot progress now (no peers, hub unreachable, no room, blocked);
    nothing changed on the device."""


@dataclass(frozen=True)
class StepEnd:
    """What a step reports; the runner journals `lifecycle.NEXT_STATE[state][outcome]`
    with `reason` and `detail`, and only then does the next step act."""

    outcome: StepOutcome
    reason: str = ""
    detail: dict[str, Any] = field(default_factory=dict)
    not_ready: bool = False
    """Send a not-ready result with the transition."""
    retry_later: str = ""
    """Once journaled, stop here for now (RetryLater with this text)."""


@dataclass
class DeploymentContext:
    """What a deployment needs from the daemon around it."""

    journal: Journal
    state_dir: StateDir
    identity: DeviceIdentity
    metadata: MetadataClient
    peers: OnDemandPeerSession
    prefix: InstallPrefix
    hub_url: str
    web_seed_after: float
    download_timeout: float
    on_result: Callable[[], None] = lambda: None
    on_activity: Callable[[str], None] = lambda text: None
    snapshots: SnapshotBackend = field(default_factory=FileTreeSnapshot)
    gate: DeploymentGate = field(default_factory=AlwaysAllow)
    reboot: RebootAdapter = field(default_factory=SystemReboot)
    max_boots: int = 3
    free_space_reserve: int = 64 * 1024 * 1024
    dpkg_query: str = "dpkg-query"
    """What reads the packages a release's requirements name ([inventory] dpkg_query)."""
    crash: CrashPoints = field(default_factory=crash_points)


def start_deployment(
    journal: Journal, release: str, target: TargetFile, crash: CrashPoints | None = None
) -> Deployment:
    """Journal a new deployment pinned to the signed target it will install."""
    info = ReleaseInfo.from_custom(target.custom, release)
    created = journal.create(
        release, info.manifest.name, info.manifest.version, {"target": target.to_dict()}
    )
    crash = crash or crash_points()
    crash.started_here(release)
    crash.after_transition(State.PENDING.value)
    return created


class DeploymentRun:
    def __init__(self, ctx: DeploymentContext, release: str) -> None:
        self.ctx = ctx
        self.release = release
        key = deployment_key(release)
        self.snapshot_store = ctx.state_dir.snapshots / key
        self.workdir = ctx.state_dir.work / key
        self.download_dir = ctx.state_dir.downloads / key
        self._target: TargetFile | None = None
        self._info: ReleaseInfo | None = None

    # plumbing ------------------------------------------------------------------

    async def _journal(
        self, new_state: State, reason: str = "", *, not_ready: bool = False, **detail: Any
    ) -> Deployment:
        detail[f"at_{new_state.value}"] = time.time()
        result = None
        if new_state in TERMINAL or not_ready:
            outcome = Outcome.NOT_READY if not_ready else REPORTS[new_state]
            result = signed_result(self.ctx.identity, self.deployment, self.info, outcome,
                                   reason, detail, new_state)
        # Called on the trio thread on purpose: one connection, strictly ordered writes.
        written = self.ctx.journal.transition(
            self.release,
            new_state,
            reason,
            detail,
            result=result,
            installed=(self.info.manifest.name, self.info.manifest.version)
            if new_state is State.COMMITTED
            else None,
        )
        self.ctx.crash.after_transition(new_state.value)
        if result is not None:
            self.ctx.on_result()  # the outbox loop sleeps until told (agent/daemon.py)
        return written

    @property
    def deployment(self) -> Deployment:
        current = self.ctx.journal.get(self.release)
        assert current is not None
        return current

    @property
    def info(self) -> ReleaseInfo:
        assert self._info is not None
        return self._info

    @property
    def installer(self) -> Installer:
        return installer_for(self.info.manifest.install, self.ctx.state_dir.root / "packages")

    @property
    def payload(self) -> Path:
        payload = self.deployment.detail.payload
        assert payload is not None, "journaled with verified"
        return Path(payload)

    def _manifest(self) -> SnapshotManifest:
        snapshot = self.deployment.detail.snapshot
        assert snapshot is not None, "journaled with installing"
        return SnapshotManifest.from_json(snapshot)

    def _backend(self, manifest: SnapshotManifest) -> SnapshotBackend:
        return backend_for_manifest(manifest, self.ctx.snapshots)

    # the loop ----------------------------------------------------------------

    async def run(self) -> Deployment:
        """Advance until a terminal state, or raise RetryLater with nothing changed."""
        signed = self.deployment.detail.target
        assert signed is not None, "journaled at creation"
        self._target = TargetFile.from_dict(dict(signed), self.release)
        self._info = ReleaseInfo.from_custom(self._target.custom, self.release)
        state = await self._resume()
        steps: dict[State, Callable[[], Awaitable[StepEnd]]] = {
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
            if state in BEFORE_INSTALL and (refusal := self._superseded()):
                end = StepEnd(StepOutcome.SUPERSEDED, refusal)
            else:
                self.ctx.on_activity(f"{state.value} {self.release}")
                try:
                    end = await steps[state]()
                finally:  # ended, or raised, without the agent dying
                    self._step_ended(state)
            # The only place a step's next state is journaled: before the next step acts.
            following = NEXT_STATE[state][end.outcome]
            await self._journal(following, end.reason, not_ready=end.not_ready, **end.detail)
            if end.retry_later:
                raise RetryLater(end.retry_later)
            state = following
        self.ctx.on_result()
        await self.ctx.gate.finished(self.release)
        # Drop the snapshot and work files unless an admin may need them (rerun at start
        # for deployments that ended just before a crash). They can be gigabytes: deleted
        # off the event loop; the journal is read here, on the loop's thread.
        await trio.to_thread.run_sync(finish_cleanup, self.ctx.state_dir, self.ctx.snapshots,
                                      self.deployment)
        return self.deployment

    def _step_ended(self, state: State) -> None:
        """The step of `state` ended without the agent dying: starts that found the
        deployment there were no state loop (lifecycle.LOOP_COUNTED)."""
        if state in LOOP_COUNTED and self.deployment.detail.starts.get(state):
            self.ctx.journal.note(self.release, **{starts_key(state): 0})

    async def _resume(self) -> State:
        current = self.deployment
        detail = current.detail
        boot_id = detail.boot_id
        facts = ResumeFacts(
            boots=detail.boots,
            revert_boots=detail.revert_boots,
            starts_here=detail.starts.get(current.state, 0),
            max_boots=self.ctx.max_boots,
            installer_idempotent=self.installer.idempotent,
            rebooted=boot_id is not None and boot_id != self.ctx.reboot.boot_id(),
        )
        state, why = resume_state(current.state, facts)
        if state is not current.state:
            log.warning("%s: found in %s: %s", self.release, current.state, why)
            if state is State.REVERT_FAILED:
                log.error("%s: REVERT FAILED: %s", self.release, why)
            self.ctx.crash.started_here(self.release)
            if state is State.REVERTING:
                await self._journal(state, why, failure=why)
            else:
                await self._journal(state, why)
        else:
            if why:
                log.warning("%s: found in %s: %s", self.release, current.state, why)
            self.ctx.crash.after_resume(self.release, state.value)
        return state

    def _superseded(self) -> str:
        """The downgrade check, before every step up to installing: what is installed may
        have changed since the deployment was created (a newer release committed while
        this one waited). If this release would now replace a newer or equal version, why
        it ends superseded, nothing changed (agent/deployment_supersede.py); else ""."""
        manifest = self.info.manifest
        refusal = manifest.refuses_to_replace(self.ctx.journal.installed_version(manifest.name))
        if refusal is None:
            return ""
        log.warning("%s: %s", self.release, superseded_reason(refusal))
        return superseded_reason(refusal)

    # the steps: each acts for its state and says how it ended -----------------------

    async def _pending(self) -> StepEnd:
        return StepEnd(StepOutcome.DONE)

    async def _scheduled(self) -> StepEnd:
        return StepEnd(StepOutcome.DONE)

    async def _downloading(self) -> StepEnd:
        assert self._target is not None
        if (unready := await self._requirements_unmet()) is not None:
            return unready
        try:
            torrent = await trio.to_thread.run_sync(
                self.ctx.metadata.download_small_target, self.info.torrent.path
            )
            self.download_dir.mkdir(parents=True, exist_ok=True)
            downloaded = await fetch_verified_payload(
                self.ctx.peers,
                self.ctx.metadata,
                self._target,
                torrent,
                self.download_dir,
                tracker_url=f"{self.ctx.hub_url}/announce",
                web_seed_url=f"{self.ctx.hub_url}/payloads/{self.release}",
                web_seed_after=self.ctx.web_seed_after,
                timeout=self.ctx.download_timeout,
            )
        except PayloadVerificationError as exc:  # rechecked; its files are gone or pruned
            return StepEnd(StepOutcome.REFUSED, f"payload refused: {exc}")
        except (DownloadError, MetadataError) as exc:
            return StepEnd(StepOutcome.POSTPONED, f"download postponed: {exc}",
                           retry_later=str(exc))
        return StepEnd(StepOutcome.DONE, detail={
            "payload": str(downloaded.path),
            "bytes_from_peers": downloaded.from_peers,
            "bytes_from_hub": downloaded.from_hub,  # web seed + hub seeder
        })

    async def _requirements_unmet(self) -> StepEnd | None:
        """The release's signed requirements, evaluated before anything is fetched
        (agent/readiness.py, the function the hub's prediction uses): unmet, the
        deployment goes back to scheduled with nothing downloaded or changed, and is
        evaluated again at the next look. A not-ready result goes out when the unmet
        requirements differ from those last reported, not at every look."""
        requires = self.info.manifest.requires
        if requires is None:
            return None
        from agent.readiness import reason, unmet_requirements
        from agent.readiness_facts import device_facts

        try:
            facts = await trio.to_thread.run_sync(
                device_facts, requires, self.ctx.prefix.path, self.ctx.dpkg_query)
        except ReadinessError as exc:
            why = f"not ready: requirements not evaluated: {exc}"
            key = "unreadable"
        else:
            unmet = unmet_requirements(requires, facts)
            if not unmet:
                return None
            why = f"not ready: {reason(unmet)}"
            key = "; ".join(item.requirement for item in unmet)
        first = self.deployment.detail.not_ready_for != key
        return StepEnd(StepOutcome.NOT_READY, why, not_ready=first,
                       detail={"not_ready_for": key}, retry_later=why)

    async def _verified(self) -> StepEnd:
        blocking = self.ctx.journal.blocking()
        if blocking:
            raise RetryLater(
                f"installs are blocked: the revert of {blocking[0].release} failed "
                f"({blocking[0].reason}); an admin must check the device and run "
                "`meisitong-agent clear`"
            )
        await self.ctx.gate.wait_for_install(self.release, self.info)
        return StepEnd(StepOutcome.DONE)

    async def _snapshotting(self) -> StepEnd:
        installer, payload = self.installer, self.payload
        try:
            paths = await trio.to_thread.run_sync(installer.planned_paths, payload, self.ctx.prefix)
            backend = backend_for_paths(paths, self._install_root(), self.ctx.snapshots)
            await trio.to_thread.run_sync(self._check_space, installer, payload, paths, backend)
        except DiskSpaceError as exc:
            first = not self.deployment.detail.not_ready_reported
            return StepEnd(StepOutcome.NOT_READY, f"not ready: {exc}", not_ready=first,
                           detail={"not_ready_reported": True}, retry_later=str(exc))
        except AgentError as exc:
            return StepEnd(StepOutcome.REFUSED, f"payload refused, nothing changed: {exc}")
        except OSError as exc:  # what is on the device cannot be measured (ELOOP, EIO, …)
            return StepEnd(StepOutcome.REFUSED, f"snapshot not possible, nothing changed: {exc}")
        before = await self._signals_window("before the install")
        try:
            # A partial one from a crash; large deletions run off the event loop.
            await trio.to_thread.run_sync(_remove_tree, self.snapshot_store)
            manifest = await trio.to_thread.run_sync(backend.take, paths, self.snapshot_store)
        except (AgentError, OSError) as exc:
            await trio.to_thread.run_sync(_remove_tree, self.snapshot_store)
            return StepEnd(StepOutcome.REFUSED, f"snapshot failed, nothing changed: {exc}")
        if refusal := self._superseded():  # the last moment before the device changes
            try:
                await trio.to_thread.run_sync(backend.discard, manifest)
            except AgentError as exc:
                log.warning("%s: snapshot not discarded: %s", self.release, exc)
            return StepEnd(StepOutcome.SUPERSEDED, refusal)
        detail: dict[str, Any] = {"snapshot": manifest.to_json()}
        if before is not None:
            detail["signals_before"] = before.model_dump(mode="json")
        return StepEnd(StepOutcome.DONE, detail=detail)

    async def _signals_window(self, when: str) -> SignalWindow | None:
        """The release's health signals over its window (`[signals]`), or None when it
        declares none or they cannot be measured: signals never hold up an install."""
        spec = self.info.manifest.signals
        if spec is None:
            return None
        try:
            return await measure_window(spec)
        except (OSError, ValueError) as exc:
            log.warning("%s: health signals %s not measured: %s", self.release, when, exc)
            return None

    def _install_root(self) -> Path | None:
        spec = self.info.manifest.install
        return self.ctx.prefix.place(spec.root) if isinstance(spec, FileTreeInstall) else None

    def _check_space(self, installer: Installer, payload: Path, paths: list[Path],
                     backend: SnapshotBackend) -> None:
        """Blocking, in a worker thread: must not touch the journal."""
        needs = installer.space_needed(payload, self.ctx.prefix, self.workdir)
        if isinstance(backend, FileTreeSnapshot):
            needs.append(SpaceNeed(self.snapshot_store, tree_bytes(paths), "snapshot"))
        check_free_space(needs, self.ctx.free_space_reserve)

    async def _installing(self) -> StepEnd:
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            await self.installer.install(self.payload, self.ctx.prefix, self.workdir)
        except (AgentError, OSError) as exc:
            return StepEnd(StepOutcome.FAILED, detail={"failure": self._install_failure(exc)})
        if self.info.manifest.reboot:
            return StepEnd(StepOutcome.NEEDS_REBOOT, "the release needs a reboot",
                           detail={"boot_id": self.ctx.reboot.boot_id()})
        return StepEnd(StepOutcome.DONE)

    def _install_failure(self, exc: Exception) -> str:
        assert self._target is not None
        payload = self.payload
        try:
            intact = payload.stat().st_size == self._target.length
        except OSError:
            intact = False
        if not intact:
            return f"install failed: the payload {payload} vanished or shrank during install: {exc}"
        return f"install failed: {exc}"

    async def _rebooting(self) -> StepEnd:
        """Entered once installed with a reboot wanted, or again after a start in the
        same boot: ask policy, then reboot. The next start sees a new boot id."""
        await self.ctx.gate.wait_for_reboot(self.release, self.info)
        await self.ctx.reboot.reboot(self.release)
        raise RetryLater("reboot requested")  # only reached by adapters that return

    async def _checking(self) -> StepEnd:
        report = await run_health_checks(self.info.manifest.health, self.ctx.prefix)
        if not report.passed:
            return StepEnd(StepOutcome.FAILED,
                           detail={"failure": f"health check failed: {report.summary()}"})
        after = await self._signals_window("after the health checks")
        detail = {} if after is None else {"signals_after": after.model_dump(mode="json")}
        return StepEnd(StepOutcome.DONE, report.summary(), detail=detail)

    async def _reverting(self) -> StepEnd:
        installer = self.installer
        failure = self.deployment.detail.failure or "interrupted"
        try:
            try:
                await installer.rollback(self.payload, self.ctx.prefix, self.workdir)
            except (AgentError, OSError) as exc:
                log.warning("%s: rollback failed (%s); restoring the snapshot",
                            self.release, exc)
            manifest = self._manifest()
            backend = self._backend(manifest)
            await trio.to_thread.run_sync(backend.restore, manifest)
            checked = await self._verify_revert(installer, backend, manifest)
        except (AgentError, OSError) as exc:  # an OSError no installer or check wrapped
            log.error("%s: REVERT FAILED: %s", self.release, exc)
            return StepEnd(StepOutcome.FAILED, f"{failure}; revert failed: {exc}")
        return StepEnd(StepOutcome.DONE, f"{failure}; reverted ({checked})")

    async def _verify_revert(
        self, installer: Installer, backend: SnapshotBackend, manifest: SnapshotManifest
    ) -> str:
        """The release's checks describe the new version; the old one is judged by the
        release's `revert_health` checks if it has any, else against the snapshot."""
        notes = [await installer.verify_reverted(self.ctx.prefix, self.workdir)]
        if self.info.manifest.revert_health:
            report = await run_health_checks(self.info.manifest.revert_health, self.ctx.prefix)
            if not report.passed:
                raise AgentError(f"health after revert failed: {report.summary()}")
            notes.append(f"revert health: {report.summary()}")
        else:
            notes.append(await trio.to_thread.run_sync(backend.verify, manifest))
        return "; ".join(note for note in notes if note)




def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
