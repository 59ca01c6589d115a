"""`meisitong-agent run`: the endpoint daemon.

One nursery holds everything: the libtorrent session (downloads and seeding; it exists
only while there is a swarm to be in, agent/on_demand_peers.py), the
outbox loop that delivers signed results until the hub has them, the inventory reporter
(agent/inventory/reporter.py), and the main loop that
first finishes whatever the journal says was interrupted, then refreshes signed
metadata, selects the rollouts that apply to this device, and deploys them one by one.
A failure of one cycle (hub unreachable, bad metadata) is logged and retried; the
daemon keeps running. So does any exception we did not foresee in a cycle or a delivery:
the data behind it came from the hub or a peer, and may be hostile (issue 12); it is
logged with its traceback and shown in `status`, and the next cycle comes as planned.
With `[metrics]` set, the nursery also holds the metrics task (agent/metrics/, imported
only then).
"""

from __future__ import annotations

import logging
import os
import time
from typing import TYPE_CHECKING

import trio

from agent.config import AgentConfig
from agent.control_signals import ControlSignalSender
from agent.deployment import DeploymentContext, DeploymentRun, RetryLater, start_deployment
from agent.deployment_files import prune_finished_downloads
from agent.deployment_supersede import supersede_waiting
from agent.device_identity import DeviceIdentity
from agent.errors import (
    AgentError,
    DeliveryError,
    MetadataError,
    RecordRefusedError,
    TargetNotFoundError,
    WireFormatError,
)
from agent.gossip import SiteGossip, refresh_metadata
from agent.heartbeat import HeartbeatSender
from agent.hub_client import HubClient
from agent.hub_contact import HubContact
from agent.install_prefix import InstallPrefix
from agent.instance_lock import hold_directory
from agent.inventory.reporter import InventoryReporter
from agent.journal import Journal, utc_now
from agent.lease_client import LeaseClient
from agent.lifecycle import BEFORE_INSTALL, State
from agent.metadata_client import MetadataClient
from agent.on_demand_peers import OnDemandPeerSession
from agent.policy import DeviceFacts
from agent.policy.gate import NotEligibleYet, PolicyGate
from agent.policy.source import PolicySource
from agent.reboot import reboot_adapter
from agent.rollout_selection import control_releases, held_releases, select_releases
from agent.start_recovery import prepare_start
from agent.state_dir import StateDir
from agent.wire.release import ReleaseInfo
from agent.wire.rollout import GroupRollouts

if TYPE_CHECKING:
    from agent.metrics.agent_metrics import AgentReadings

log = logging.getLogger(__name__)

OUTBOX_RETRY_SECONDS = 10.0


class AgentDaemon:
    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.state = StateDir(config.agent.state_dir)
        enrollment = self.state.read_enrollment()
        self.hub_url = (config.hub_url or enrollment["hub_url"]).rstrip("/")
        self.identity = DeviceIdentity.load(self.state.device_key)
        self.journal = Journal(self.state.journal)
        # Site gossip (None without a hub-issued certificate): relays results, and TUF
        # metadata from peers while the hub is down.
        self.gossip = SiteGossip.from_config(
            config, self.state, self.identity, self.journal, self.hub_url
        )
        self.metadata = MetadataClient(
            self.state.metadata,
            self.state.targets,
            self.hub_url,
            trusted_root=self.state.trusted_root.read_bytes(),
            fetcher=self.gossip.fetcher if self.gossip else None,
        )
        self.hub = HubClient(self.hub_url, config.hub.timeout)
        # What the device runs, signed, to the hub and into gossip (agent/inventory/).
        self.inventory = InventoryReporter(
            config.inventory, self.state.inventory, self.identity, self.journal, self.hub_url,
            config.hub.timeout, disk=config.agent.install_prefix,
            publish=self.gossip.publish_software if self.gossip else None,
        ) if config.inventory.enabled else None
        self.hub_contact = HubContact(self.journal)  # for `status`: reachable, metadata source
        # Tells the hub this device is alive while it has nothing to report.
        self.heartbeat = HeartbeatSender(self.hub_url, self.identity, self.hub_contact,
                                         config.hub.heartbeat_interval, config.hub.timeout,
                                         audit_head=self.metadata.audit_head)
        # Signals of releases this device is not yet in the stage of, for the hub's
        # concurrent control (agent/control_signals.py).
        self.control_signals = ControlSignalSender(self.hub_url, self.identity,
                                                   config.hub.timeout)
        # The group's signed policy decides when to install and reboot (agent/policy/).
        self.policy_source = PolicySource(self.metadata, self.state.root / "policy",
                                          self.identity.device_id, config.agent.group)
        self.gate = PolicyGate(self.journal, DeviceFacts(self.identity.device_id,
                                                         dict(config.agent.labels)),
                               LeaseClient(self.hub_url, self.identity, config.hub.timeout))
        self.gate.apply(self.policy_source.cached())
        # Created by the first download, dropped when there is nothing to seed.
        self.peers = OnDemandPeerSession(
            listen=config.p2p.listen,
            upload_limit=config.p2p.upload_limit,
            download_limit=config.p2p.download_limit,
            local_discovery=config.p2p.local_discovery,
            seed_time=config.p2p.seed_time,
            device_id=self.identity.device_id,
            on_change=lambda text: self.journal.set_status("p2p", text),
        )
        self.ctx = DeploymentContext(
            journal=self.journal,
            state_dir=self.state,
            identity=self.identity,
            metadata=self.metadata,
            peers=self.peers,
            prefix=InstallPrefix(config.agent.install_prefix),
            hub_url=self.hub_url,
            web_seed_after=config.p2p.web_seed_after,
            download_timeout=config.p2p.download_timeout,
            on_activity=lambda text: self.journal.set_status("activity", text),
            gate=self.gate,
            reboot=reboot_adapter(config.lifecycle.reboot),
            max_boots=config.lifecycle.max_boots,
            free_space_reserve=config.lifecycle.free_space_reserve,
            dpkg_query=config.inventory.dpkg_query,
        )
        self.metadata_refreshed_at: float | None = None  # Unix time, for metrics
        self.metadata_refresh_failures = 0

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        # Before anything is counted or cleaned up: a second daemon here must not start.
        with hold_directory(self.state.root, "meisitong-agent run"):
            await self._run(task_status)

    async def _run(self, task_status: trio.TaskStatus[None]) -> None:
        self.journal.set_status("daemon", f"running, pid {os.getpid()}, since {utc_now()}")
        # Boot counter, deployments superseded before a crash, leftovers of those cut short.
        for release in prepare_start(self.ctx):
            await self.gate.finished(release)
        log.info("agent %s (group %s, site %s) using hub %s", self.identity.device_id,
                 self.config.agent.group, self.config.agent.site, self.hub_url)
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(self.peers.run)
                if self.gossip is not None:
                    await nursery.start(self.gossip.run, self.peers)
                nursery.start_soon(self._outbox_loop)
                nursery.start_soon(self.heartbeat.run)
                nursery.start_soon(self.control_signals.run)
                if self.inventory is not None:
                    nursery.start_soon(self.inventory.run)
                await nursery.start(self.gate.run)  # renews held disruption-budget leases
                if self.config.metrics.enabled:
                    from agent.metrics.exporter import MetricsExporter

                    await nursery.start(
                        MetricsExporter(self.config.metrics, self.metrics_readings).run)
                task_status.started()
                await self._main_loop()
        finally:
            self.journal.set_status("daemon", f"stopped at {utc_now()}")
            self.journal.set_status("activity", "idle")

    async def _main_loop(self) -> None:
        last_error = ""
        while True:
            try:
                await self.cycle()
                if last_error:
                    log.info("cycle succeeded again")
                last_error = ""
                self.journal.set_status("last_error", "")
            except AgentError as exc:
                # Said once at ERROR; the same failure every poll (a hub down for hours)
                # is routine until it changes, and `status` shows it meanwhile.
                log.log(logging.INFO if str(exc) == last_error else logging.ERROR, "%s", exc)
                last_error = str(exc)
                self.journal.set_status("last_error", str(exc))
            except Exception as exc:  # noqa: BLE001 - no hub or peer input may end the daemon
                log.exception("cycle failed unexpectedly; the daemon goes on")
                self.journal.set_status("last_error", f"unexpected {type(exc).__name__}: "
                                                      f"{str(exc)[:500]}")
            self.journal.set_status("activity", "idle")
            # Until the next metadata refresh, or earlier when a planned time comes.
            await self.gate.sleep(self.config.agent.poll_interval)

    async def cycle(self) -> None:
        """Finish interrupted work, refresh metadata, deploy what applies to this device.

        A deployment that has begun changing the device is finished first, hub or no hub;
        one that has not goes on only after a refresh (`_resume_unchanged`)."""
        for deployment in self.journal.unfinished():
            if deployment.state not in BEFORE_INSTALL:
                await self._deploy(deployment.release)
        pruned = await trio.to_thread.run_sync(  # payloads can be gigabytes
            prune_finished_downloads, self.state, self.journal.deployments(),
            self.peers.holds_files())
        for release in pruned:
            log.info("%s: payload no longer seeded, removed from downloads", release)
        self.journal.set_status("activity", "refreshing metadata")
        fetcher = self.gossip.fetcher if self.gossip else None
        try:
            chains_before = self.metadata.full_refreshes
            source = await refresh_metadata(self.metadata, fetcher)
        except MetadataError as exc:
            self.metadata_refresh_failures += 1
            self.journal.set_status("metadata", f"refresh FAILED at {utc_now()}")
            self.hub_contact.refresh_failed(exc, fetcher.hub_error if fetcher else None)
            raise
        self.metadata_refreshed_at = time.time()
        ran = self.metadata.full_refreshes > chains_before
        what = "refreshed" if ran else "unchanged (the trusted timestamp)"
        self.journal.set_status("metadata", f"{what} at {utc_now()}")
        self.hub_contact.refreshed(source)
        self.gate.apply(await trio.to_thread.run_sync(self.policy_source.refresh))
        group = self.gate.group  # the admin's signed assignment, else agent.toml's
        document_bytes = await trio.to_thread.run_sync(self.metadata.rollout_document, group)
        document = None if document_bytes is None else GroupRollouts.from_bytes(
            document_bytes, f"rollouts/{group}.json")
        await self._resume_unchanged(document)
        if document is None:
            self.control_signals.update({})
            return
        releases, targets = {}, {}
        for entry in document.rollouts:
            try:
                target = await trio.to_thread.run_sync(
                    self.metadata.release_target, entry.release
                )
                releases[entry.release] = ReleaseInfo.from_custom(target.custom, entry.release)
                targets[entry.release] = target
            except (TargetNotFoundError, WireFormatError) as exc:
                log.warning("rollout of %s ignored: %s", entry.release, exc)
        installed = {
            name: version
            for name in {info.manifest.name for info in releases.values()}
            if (version := self.journal.installed_version(name)) is not None
        }
        candidates, skipped = select_releases(
            document, self.identity.device_id, releases, installed
        )
        self.control_signals.update(
            control_releases(document, self.identity.device_id, releases))
        for skip in skipped:
            log.debug("not deploying %s: %s", skip.release, skip.why)
        for candidate in candidates:
            if self.journal.get(candidate.release) is None and self.gate.admit(
                candidate.release, candidate.info
            ):
                start_deployment(self.journal, candidate.release, targets[candidate.release])
                await self._deploy(candidate.release)

    async def _resume_unchanged(self, document: GroupRollouts | None) -> None:
        """Go on with deployments that have changed nothing yet (they may have downloaded
        and be waiting for a window) only while the signed rollout still says so: a halt
        or pause signed meanwhile keeps them waiting."""
        waiting = [d.release for d in self.journal.unfinished() if d.state in BEFORE_INSTALL]
        held = held_releases(document, self.identity.device_id, waiting)
        for release in waiting:
            if release in held:
                log.info("%s: not going on: %s", release, held[release])
                continue
            await self._deploy(release)

    async def _deploy(self, release: str) -> None:
        try:
            finished = await DeploymentRun(self.ctx, release).run()
        except NotEligibleYet as exc:
            log.info("%s: %s", release, exc.text)
            return
        except RetryLater as exc:
            log.info("%s: will retry: %s", release, exc)
            return
        log.info("%s: %s %s", release, finished.state, finished.reason)
        if finished.state is State.COMMITTED:
            # Older deployments of this name waiting for a window would now be downgrades.
            for superseded in supersede_waiting(self.ctx, finished.name):
                await self.gate.finished(superseded)

    def metrics_readings(self) -> AgentReadings:
        """What `[metrics]` exports, read now (agent/metrics/agent_metrics.py)."""
        from agent.metrics.agent_metrics import AgentReadings

        return AgentReadings(
            deployments=self.journal.state_counts(),
            installs_blocked=bool(self.journal.blocking()),
            metadata_refreshed_at=self.metadata_refreshed_at,
            metadata_refresh_failures=self.metadata_refresh_failures,
            outbox_pending=self.journal.outbox_counts()[1],
            downloaded=dict(self.peers.downloaded),
            uploaded=self.peers.uploaded_bytes(),
            libtorrent_session=self.peers.active,
        )

    async def deliver_results(self) -> int:
        """Send what the outbox holds until the hub has it all or cannot be reached;
        returns how many records are still waiting."""
        for record_id, body in self.journal.undelivered():
            try:
                await self.hub.post_result(body)
            except DeliveryError as exc:
                log.info("results wait in the outbox: %s", exc)
                break
            except RecordRefusedError as exc:
                log.error("hub refused result %s for good: %s", record_id, exc)
            self.journal.mark_delivered(record_id)
        return self.journal.outbox_counts()[1]

    async def _outbox_loop(self) -> None:
        """Deliver the outbox; retry every OUTBOX_RETRY_SECONDS while it holds records.
        An empty outbox is not polled: every result is journaled by a deployment step,
        which wakes this loop (`DeploymentContext.on_result`)."""
        while True:
            # A fresh event before reading the outbox: a result journaled while we send
            # sets it, so it goes out at once rather than after the retry delay.
            results_waiting = trio.Event()
            self.ctx.on_result = results_waiting.set
            try:
                waiting = await self.deliver_results()
            except Exception:  # noqa: BLE001 - no hub answer may end the daemon
                log.exception("delivering results failed unexpectedly; retried later")
                waiting = 1
            with trio.move_on_after(OUTBOX_RETRY_SECONDS if waiting else float("inf")):
                await results_waiting.wait()
