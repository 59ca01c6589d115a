"""`meisitong-hub serve`: one process that serves HTTP, seeds payloads and keeps the
online metadata fresh.

At start it links any target missing at its consistent-snapshot path
(hub/repository/target_files.py).
Tasks, all in one nursery: the HTTP server (Hypercorn's trio worker), the libtorrent
seeder, a loop that starts seeding releases published while the server runs, a loop that
re-signs the timestamp before it expires, a loop that records how many payload bytes
left the hub (seeder and web seed) so `status` can show it, the rollout controller
(hub/rollouts/runner.py), which advances and halts rollouts as results arrive, the
writer of devices' last-seen times from their heartbeats (hub/devices/presence.py), and
the audit anchor, which re-signs the timestamp carrying the audit chain's head when it
moved (hub/audit/anchor.py; once before serving, then every `[audit] anchor_interval`),
and the console's live rollout progress (hub/console/live.py; idle while no page watches).
`GET /metrics` (hub/metrics/) is on the same port unless `[metrics] enabled = false`.
"""

from __future__ import annotations

import logging
import secrets
from pathlib import Path
from typing import Any

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve

from agent.instance_lock import hold_directory
from agent.listen_address import bound_tcp_socket
from hub.api.web_app import CountingFiles, make_app
from hub.audit.anchor import anchor_head
from hub.config import HubConfig
from hub.console.live import LiveRollouts
from hub.database import HubDatabase
from hub.devices.presence import LastSeenBatch, heartbeat_routes
from hub.errors import RepositoryError
from hub.hub_dir import HubDir
from hub.metrics.endpoint import metrics_routes, read_bearer_token
from hub.metrics.fleet_state import FleetStateCache
from hub.metrics.hub_metrics import HubMetrics, ProcessCounts
from hub.metrics.request_timing import RequestTiming
from hub.releases.published_releases import PublishedReleases
from hub.repository.target_files import repair_target_files
from hub.repository.tuf_repository import HubRepository
from hub.rollouts.runner import RolloutRuleRunner
from hub.swarm.seeder import HubSeeder
from hub.swarm.site_peers import DeviceSites, SitePeerSelector
from hub.swarm.tracker import Swarms
from hub.swarm.tracker_http import tracker_routes

log = logging.getLogger(__name__)


def _ignore(*_args: object) -> None:
    """What a hub without metrics does with what they would count."""

RELEASE_POLL_SECONDS = 2.0
STATS_FLUSH_SECONDS = 2.0


class HubServer:
    def __init__(self, hub_dir: HubDir, config: HubConfig) -> None:
        hub_dir.require_initialized()
        self.hub_dir = hub_dir
        self.config = config
        # Checked before anything starts, so a bad file is one clear error at `serve`.
        self.tls = config.server.tls_files()
        # The tracker knows the hub's own seeder by this secret in its tracker URL.
        hub_key = secrets.token_urlsafe(24)
        self.site_peers = SitePeerSelector(config.tracker.hub_peers_per_site)
        self.swarms = Swarms(
            interval=config.tracker.interval, peer_selector=self.site_peers, hub_key=hub_key
        )
        # One view of the releases table for the tracker and the web seed: neither serves
        # a release before its signed target is published.
        self.published = PublishedReleases.from_database(hub_dir.database)
        site_of = DeviceSites(hub_dir.database).site_of
        # Devices' signed heartbeats, their last-seen times written in batches.
        self.last_seen = LastSeenBatch(hub_dir.database)
        # Prometheus metrics (hub/metrics/): made before the app, which reports to them.
        self.metrics: HubMetrics | None = None
        metrics_route = []
        if config.metrics.enabled:
            token_file = config.metrics.bearer_token_file
            self.metrics = HubMetrics(
                FleetStateCache(hub_dir.database, config.metrics.online_within),
                self._process_counts)
            metrics_route = metrics_routes(
                self.metrics, read_bearer_token(token_file) if token_file else None)
        # The console's live rollout progress: polls the database only while a page
        # watches, and reads the tracker's swarms for downloads in flight.
        self.console_live = LiveRollouts(hub_dir.database, self.swarms)
        self.app = make_app(
            hub_dir,
            [*tracker_routes(self.swarms, self.published, site_of,
                             self.metrics.announce_answered if self.metrics else _ignore),
             *heartbeat_routes(self.last_seen),
             *metrics_route],
            self.published,
            on_ingested=self.metrics.result_ingested if self.metrics else _ignore,
            config=config,
            console_live=self.console_live,
        )
        # What Hypercorn serves: the app, timed per route when metrics are on.
        self.asgi: Any = self.app if self.metrics is None else RequestTiming(
            self.app, self.app.router.routes, self.metrics.observe_request)
        self.seeder = HubSeeder(
            listen=config.seeding.listen,
            upload_limit=config.seeding.upload_limit,
            tracker_url=f"{config.public_url}/announce",
            hub_key=hub_key,
        )
        self._earlier_runs: dict[tuple[str, str], int] | None = None
        self._seeded: dict[str, str] = {}  # info_hash_v1 -> release target
        # The rollout controller: advances and halts rollouts as results arrive.
        self.rollout_rules = RolloutRuleRunner(hub_dir)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        # A second `serve` here would re-sign the timestamp and run rollouts twice.
        with hold_directory(self.hub_dir.root, "meisitong-hub serve"):
            await self._run(task_status)

    async def _run(self, task_status: trio.TaskStatus[None]) -> None:
        http_config = HypercornConfig()
        # Bound here so a taken port is refused naming it; Hypercorn takes the socket over.
        listener = bound_tcp_socket(self.config.server.listen, "[server] listen in hub.toml")
        http_config.bind = [f"fd://{listener.detach()}"]
        if self.tls is not None:
            http_config.certfile, http_config.keyfile = (str(path) for path in self.tls)
        http_config.accesslog = None
        http_config.errorlog = logging.getLogger("hub.http")  # type: ignore[assignment]
        await self._repair_target_files()
        await self._anchor_audit_head()  # agents' first timestamp already carries it
        try:
            async with trio.open_nursery() as nursery:
                # HTTP first: the seeder announces at once when a torrent is added, and a
                # refused first announce makes libtorrent back off for 15 s or more.
                await nursery.start(hypercorn_serve, self.asgi, http_config)
                await nursery.start(self.seeder.run)
                await self._seed_new_releases()
                nursery.start_soon(self._release_loop)
                nursery.start_soon(self._metadata_loop)
                nursery.start_soon(self._audit_anchor_loop)
                nursery.start_soon(self._stats_loop)
                nursery.start_soon(self.last_seen.run)
                nursery.start_soon(self.rollout_rules.run)
                nursery.start_soon(self.console_live.run)
                log.info(
                    "hub serving on %s (public %s), seeding on %s",
                    self.config.server.listen, self.config.public_url, self.config.seeding.listen,
                )
                task_status.started()
        finally:
            with trio.CancelScope(shield=True):
                self._flush_stats()
                try:
                    await self.last_seen.flush()
                except Exception:  # noqa: BLE001 - stopping goes on; the times are lost
                    log.exception("could not record devices' last contact at stop")
            self.seeder.close()

    async def _repair_target_files(self) -> None:
        """Hubs published before payloads were linked under /targets/ get them now, so
        standard TUF clients find every target (hub/repository/target_files.py)."""
        try:
            made = await trio.to_thread.run_sync(repair_target_files, self.hub_dir)
        except (OSError, RepositoryError) as exc:
            log.error("could not link every target under %s: %s", self.hub_dir.targets, exc)
            return
        if made:
            log.info("linked %d target file(s) at their consistent-snapshot paths", made)

    async def _seed_new_releases(self) -> None:
        def published() -> list[tuple[str, str, str]]:
            database = HubDatabase(self.hub_dir.database)
            try:
                return [
                    (row["target"], row["torrent_target"], row["info_hash_v1"])
                    for row in database.query("SELECT * FROM releases")
                ]
            finally:
                database.close()

        for target, torrent_target, info_hash in await trio.to_thread.run_sync(published):
            if info_hash in self._seeded:
                continue
            torrent = self._torrent_file(torrent_target)
            payload = self.hub_dir.payloads / target
            if torrent is None or not payload.exists():
                log.error("release %s: payload or torrent missing on disk; not seeding", target)
                continue
            self.published.invalidate()  # before the seeder's first announce
            self.seeder.add(torrent.read_bytes(), payload)
            self._seeded[info_hash] = target
            log.info("seeding %s", target)

    def _torrent_file(self, torrent_target: str) -> Path | None:
        """Targets are stored under consistent-snapshot names `HASH.NAME`."""
        directory = self.hub_dir.targets / Path(torrent_target).parent
        matches = sorted(directory.glob(f"*.{Path(torrent_target).name}"))
        return matches[-1] if matches else None

    async def _release_loop(self) -> None:
        while True:
            await trio.sleep(RELEASE_POLL_SECONDS)
            await self._seed_new_releases()

    async def _metadata_loop(self) -> None:
        while True:
            try:
                refreshed = await trio.to_thread.run_sync(
                    lambda: HubRepository(self.hub_dir).refresh_timestamp()
                )
                if refreshed:
                    log.info("re-signed timestamp metadata")
            except Exception:
                log.exception("could not refresh timestamp metadata; agents will see it expire")
            await trio.sleep(self.config.metadata.refresh_check_interval)

    async def _anchor_audit_head(self) -> None:
        try:
            await trio.to_thread.run_sync(anchor_head, self.hub_dir)
        except Exception:
            log.exception("could not anchor the audit head in the timestamp; retrying")

    async def _audit_anchor_loop(self) -> None:
        while True:
            await trio.sleep(self.config.audit.anchor_interval)
            await self._anchor_audit_head()

    async def _stats_loop(self) -> None:
        while True:
            await trio.sleep(STATS_FLUSH_SECONDS)
            await trio.to_thread.run_sync(self._flush_stats)

    def _process_counts(self) -> ProcessCounts:
        """Bytes sent since start and the tracker's swarms, for a scrape (event loop's
        thread: the swarms are only touched there)."""
        payload_files: CountingFiles = self.app.state.payload_files
        seeder = sum(stats.total_payload_upload for stats in self.seeder.stats().values())
        peers = {"seeder": 0, "leecher": 0}
        hashes = self.swarms.info_hashes()
        for info_hash in hashes:
            counts = self.swarms.counts(info_hash)
            if counts is not None:
                peers["seeder"] += counts.complete
                peers["leecher"] += counts.incomplete
        return ProcessCounts({"seeder": seeder, "web-seed": sum(payload_files.sent.values())},
                             peers, len(hashes))

    def _flush_stats(self) -> None:
        """Record bytes sent as totals over every run of the hub: libtorrent's and the
        web seed's counters start at zero each start, so this run's count is added to
        what earlier runs recorded."""
        payload_files: CountingFiles = self.app.state.payload_files
        database = HubDatabase(self.hub_dir.database)
        try:
            if self._earlier_runs is None:
                self._earlier_runs = database.all_transfer_bytes()
            current: dict[tuple[str, str], int] = {}
            for info_hash, stats in self.seeder.stats().items():
                target = self._seeded.get(info_hash)
                if target:
                    current[(target, "seeder")] = stats.total_payload_upload
            for path, sent in list(payload_files.sent.items()):
                current[(path, "web-seed")] = sent
            for (release, channel), sent in current.items():
                earlier = self._earlier_runs.get((release, channel), 0)
                database.set_transfer_bytes(release, channel, earlier + sent)
        finally:
            database.close()
