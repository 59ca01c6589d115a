"""A fleet of many groups under their real policies, rolling out a critical release with
a 72 h deadline, on trio's MockClock; what it leaves behind is a real hub database the
compliance report can be run over.

Real, as in tests/sim/fleet_simulation.py: the hub directory (TUF, keys, SQLite), the
release published with `publish_release` (severity critical), each group's policy
published with `set_policy` (validated by the agent's model, signed by the offline
release key as a target), one rollout per group started with `start_rollout` and the
staging `fleet_conditions.admin_plan` picks, the controller (`RolloutRuleRunner`) and
the documents it signs, `MetadataClient` verifying documents and policies, the agent's
`select_releases` / `held_releases`, its policy evaluator `plan_install` (windows in
each zone, jitter, deadline) deciding when each device installs, results signed by
each device and ingested by `ingest_result`, and devices' last contact written by the
heartbeat batcher `LastSeenBatch.write`.

Simulated: what a device does between choosing the release and reporting (download and
install take a drawn time; a failing device reports `reverted`, a full disk `not-ready`),
enrollment (rows written straight into `devices`), and the HTTP layer (the mirror reads
the hub's directory; see fleet_simulation.DirectoryFetcher).

Two shortcuts that change no outcome, both for speed at 10,000 devices:
- Polling is event-driven. An agent polls every `poll_seconds`; what it decides is a
  pure function of the signed metadata, which changes only when the hub signs. So each
  device sleeps until the metadata changes, then until its own next poll tick: it acts
  at the moment it would have by polling, without 10,000 wake-ups a minute.
- Heartbeats every `heartbeat_seconds` (the agent's default) are written by the hub's
  batcher once a simulated hour instead of every few seconds: a batch keeps each
  device's latest time, so what `devices.last_seen` holds at the end (and whenever a
  batch is written) is the same; nothing in the run reads it in between.
"""

from __future__ import annotations

import functools
import math
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import trio
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from agent.metadata_client import MetadataClient
from agent.policy import NO_POLICY, DeviceFacts, Policy, ReleaseFacts, Verdict, plan_install
from agent.policy.model import policy_target_path
from agent.rollout_selection import held_releases, select_releases
from agent.wire.release import ReleaseInfo
from agent.wire.result import Outcome, ResultRecord, SignedResult
from agent.wire.rollout import GroupRollouts
from hub.database import HubDatabase
from hub.devices.presence import LastSeenBatch
from hub.devices.results_store import ingest_result
from hub.hub_dir import HubDir
from hub.hub_init import initialize_hub
from hub.policy.policies import set_policy
from hub.releases.publisher import publish_release
from hub.rollouts.changes import start_rollout
from hub.rollouts.runner import RolloutRuleRunner
from tests.fleet import tar_bytes
from tests.sim.fleet_conditions import (
    DEADLINE_HOURS,
    GROUPS,
    HOUR,
    PUBLISHED,
    DeviceConditions,
    FleetMakeup,
    admin_plan,
    draw_fleet,
    group_sizes,
)
from tests.sim.fleet_simulation import HUB_URL, DirectoryFetcher

ROLLOUT_START_SECONDS = 600.0
"""The admin starts the rollouts ten minutes after publishing."""
REVERT_REASON = "health check 'service-up' failed; reverted to the snapshot"
NOT_READY_REASON = "not ready: 180 MiB free under /opt, the snapshot and install need 410 MiB"


@dataclass(frozen=True)
class RunSpec:
    makeup: FleetMakeup = FleetMakeup()
    poll_seconds: float = 60.0
    heartbeat_seconds: float = 900.0
    heartbeat_flush_seconds: float = 3600.0
    controller_seconds: float = 60.0
    report_after_hours: float = DEADLINE_HOURS + 1.0
    """The run ends here, past every deadline; the report looks at the hub then."""


@dataclass
class DeviceFate:
    """What the simulation knows happened to one device."""

    group: str
    outcome: str = ""
    """The result it reported ('' if none)."""
    finished_at: datetime | None = None
    received_at: datetime | None = None
    """When it downloaded the release."""
    offline_since: datetime | None = None
    """Its last contact before going offline, if it was offline at the end."""
    install_reason: str = ""
    """Why the policy let it start when it did (`plan_install`'s reason)."""


@dataclass
class RunOutcome:
    hub_dir: HubDir
    release: str
    published_at: datetime
    ended_at: datetime
    fates: dict[str, DeviceFate] = field(default_factory=dict)
    conditions: dict[str, DeviceConditions] = field(default_factory=dict)
    wall_seconds: float = 0.0
    setup_seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    """Wall seconds spent in the hub's own code during the run, by part."""
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def deadline(self) -> datetime:
        return self.published_at + timedelta(hours=DEADLINE_HOURS)


class _Stopwatch:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.counts: dict[str, int] = {}

    def time(self, part: str) -> _Timed:
        return _Timed(self, part)


class _Timed:
    def __init__(self, watch: _Stopwatch, part: str) -> None:
        self.watch, self.part = watch, part

    def __enter__(self) -> None:
        self.started = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        spent = time.perf_counter() - self.started
        self.watch.seconds[self.part] = self.watch.seconds.get(self.part, 0.0) + spent
        self.watch.counts[self.part] = self.watch.counts.get(self.part, 0) + 1


class GroupView:
    """What every agent of one group reads from the verified metadata: its rollout
    document and its policy. `changed` is set (and replaced) when either changes."""

    def __init__(self, group: str) -> None:
        self.group = group
        self.document = GroupRollouts(group=group)
        self.policy: Policy = NO_POLICY
        self._seen: tuple[bytes, bytes] = (b"", b"")
        self.changed = trio.Event()

    def update(self, document: bytes | None, policy: bytes | None) -> None:
        seen = (document or b"", policy or b"")
        if seen == self._seen:
            return
        self._seen = seen
        self.document = GroupRollouts.from_bytes(
            document or f'{{"group":"{self.group}"}}'.encode(), f"rollouts of {self.group}")
        self.policy = Policy.from_toml(policy, self.group) if policy else NO_POLICY
        self.changed.set()
        self.changed = trio.Event()


class Mirror:
    """One verified TUF client for the fleet: every device of a group would read the
    same signed bytes. Refreshed when the hub signs a new timestamp."""

    def __init__(self, hub_dir: HubDir, workdir: Path, groups: list[str]) -> None:
        self.hub_dir = hub_dir
        self.client = MetadataClient(
            workdir / "metadata", workdir / "targets", HUB_URL,
            trusted_root=(hub_dir.metadata / "1.root.json").read_bytes(),
            fetcher=DirectoryFetcher(hub_dir),
        )
        self.views = {group: GroupView(group) for group in groups}
        self.releases: dict[str, ReleaseInfo] = {}
        self._timestamp = b""

    def refresh(self) -> None:
        from agent.errors import TargetNotFoundError

        timestamp = (self.hub_dir.metadata / "timestamp.json").read_bytes()
        if timestamp == self._timestamp:
            return
        self.client.refresh()
        self._timestamp = timestamp
        for group, view in self.views.items():
            try:
                policy: bytes | None = self.client.download_small_target(
                    policy_target_path(group))
            except TargetNotFoundError:
                policy = None
            document = self.client.rollout_document(group)
            if document:
                for entry in GroupRollouts.from_bytes(document, group).rollouts:
                    if entry.release not in self.releases:
                        target = self.client.release_target(entry.release)
                        self.releases[entry.release] = ReleaseInfo.from_custom(
                            target.custom, entry.release)
            view.update(document, policy)


def _publish(hub_dir: HubDir, workdir: Path) -> str:
    payload, manifest = workdir / "app.tar", workdir / "app.toml"
    payload.write_bytes(tar_bytes({"VERSION": b"2.0.1"}))
    manifest.write_text('name = "app"\nversion = "2.0.1"\nseverity = "critical"\n'
                        'category = "security"\n[install]\ntype = "file-tree"\n'
                        'root = "/opt/app"\n')
    return publish_release(hub_dir, manifest, payload, now=PUBLISHED).target


def _enroll(hub_dir: HubDir, fleet: list[DeviceConditions], heartbeat_seconds: float) -> None:
    """Rows as enrollment leaves them, and each device's last heartbeat before the
    release was published (offline devices: the last one before they went away)."""
    database = HubDatabase(hub_dir.database)
    try:
        with database.transaction() as db:
            db.executemany(
                "INSERT INTO devices (device_id, public_key, name, hostname, grp, site, "
                "status, enrolled_at) VALUES (?, ?, ?, ?, ?, ?, 'accepted', ?)",
                [(d.device_id, d.key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw),
                  d.device_id, d.device_id, d.group, d.group,
                  (PUBLISHED - timedelta(days=30)).isoformat()) for d in fleet],
            )
    finally:
        database.close()
    last = {}
    for device in fleet:
        seconds = (device.offline_from if device.offline_from is not None
                   else -device.phase * heartbeat_seconds)
        last[device.device_id] = _stamp(PUBLISHED + timedelta(seconds=seconds))
    LastSeenBatch(hub_dir.database).write(last)


def _stamp(when: datetime) -> str:
    return when.isoformat(timespec="seconds")


def prepare(workdir: Path, spec: RunSpec) -> tuple[HubDir, str, list[DeviceConditions]]:
    hub_dir = HubDir(workdir / "hub")
    initialize_hub(hub_dir, None, "127.0.0.1:1", "", "127.0.0.1:2")
    fleet = draw_fleet(spec.makeup)
    _enroll(hub_dir, fleet, spec.heartbeat_seconds)
    for group in GROUPS:
        policy_file = workdir / f"{group.name}.toml"
        policy_file.write_text(group.policy)
        set_policy(hub_dir, group.name, policy_file, actor="admin")
    return hub_dir, _publish(hub_dir, workdir), fleet


def last_heartbeats(fleet: list[DeviceConditions], interval: float, since: float,
                    until: float) -> dict[str, str]:
    """Each device's last heartbeat in (since, until], if it sent one: every device
    heartbeats each `interval` seconds at its own offset while online. Only the last one
    per batch matters: the batch writes one time per device, the latest. (Devices here
    only ever come back online, never go away mid-run, so if a device sent any heartbeat
    in the batch it sent the last one.)"""
    beats: dict[str, str] = {}
    for device in fleet:
        offset = device.phase * interval
        at = offset + math.floor((until - offset) / interval) * interval
        if at > since and device.online(at):
            beats[device.device_id] = _stamp_seconds(round(at))
    return beats


@functools.lru_cache(maxsize=1 << 16)
def _stamp_seconds(seconds: int) -> str:
    return _stamp(PUBLISHED + timedelta(seconds=seconds))


async def simulate(spec: RunSpec, workdir: Path) -> RunOutcome:
    """Publish, start the rollouts, run the fleet until `report_after_hours`; trio's clock
    must be a MockClock. Returns what the simulation knows, for the test to compare the
    report with."""
    started = time.perf_counter()
    hub_dir, release, fleet = prepare(workdir, spec)
    watch = _Stopwatch()
    zero = trio.current_time()

    def virtual_now() -> datetime:
        return PUBLISHED + timedelta(seconds=trio.current_time() - zero)

    def elapsed() -> float:
        return trio.current_time() - zero

    outcome = RunOutcome(hub_dir, release, PUBLISHED, PUBLISHED,
                         fates={d.device_id: DeviceFate(d.group) for d in fleet},
                         conditions={d.device_id: d for d in fleet},
                         setup_seconds=time.perf_counter() - started)
    mirror = Mirror(hub_dir, workdir, [group.name for group in GROUPS])
    runner = RolloutRuleRunner(hub_dir, now=virtual_now)
    database = HubDatabase(hub_dir.database)
    last_seen = LastSeenBatch(hub_dir.database)

    def report(device: DeviceConditions, outcome_: Outcome, reason: str) -> None:
        now = virtual_now()
        record = ResultRecord(
            record_id=uuid.uuid4().hex, device_id=device.device_id, release=release,
            name="app", version="2.0.1", outcome=outcome_, reason=reason,
            started_at=_stamp(now - timedelta(seconds=device.install_seconds)),
            finished_at=_stamp(now),
        )
        signed = SignedResult.sign(record, device.key)
        with watch.time("ingest_result"):
            ingest_result(database, signed, now=now)
        fate = outcome.fates[device.device_id]
        fate.outcome, fate.finished_at = outcome_.value, now

    async def next_poll(device: DeviceConditions) -> None:
        offset = device.phase * spec.poll_seconds
        now = elapsed()
        tick = offset + math.ceil((now - offset) / spec.poll_seconds) * spec.poll_seconds
        await trio.sleep(tick - now)

    async def until_changed_or(view: GroupView, seconds: float | None) -> None:
        changed = view.changed
        with trio.move_on_after(seconds if seconds is not None else math.inf):
            await changed.wait()

    async def run_device(device: DeviceConditions) -> None:
        view = mirror.views[device.group]
        if not device.online(elapsed()):
            if device.back_at is None:
                return
            await trio.sleep(device.back_at - elapsed())
        facts = DeviceFacts(device.device_id)
        while True:
            await next_poll(device)
            chosen, _ = select_releases(view.document, device.device_id, mirror.releases, {})
            if not chosen:
                await until_changed_or(view, None)
                continue
            candidate = chosen[0]
            await trio.sleep(device.download_seconds)
            outcome.fates[device.device_id].received_at = virtual_now()
            release_facts = ReleaseFacts.from_info(candidate.release, candidate.info)
            while not held_releases(view.document, device.device_id, [candidate.release]):
                with watch.time("plan_install"):
                    plan = plan_install(view.policy, release_facts, facts, virtual_now())
                if plan.verdict is Verdict.NOW:
                    outcome.fates[device.device_id].install_reason = plan.reason
                    if device.not_ready:
                        report(device, Outcome.NOT_READY, NOT_READY_REASON)
                        return
                    await trio.sleep(device.install_seconds)
                    if device.fails:
                        report(device, Outcome.REVERTED, REVERT_REASON)
                    else:
                        report(device, Outcome.INSTALLED, "")
                    return
                wait = None
                if plan.verdict is Verdict.WAIT and plan.at is not None:
                    wait = max(0.0, (plan.at - virtual_now()).total_seconds())
                await until_changed_or(view, wait)

    flushed = 0.0

    def flush_heartbeats() -> None:
        nonlocal flushed
        until = elapsed()
        with watch.time("heartbeats"):
            batch = last_heartbeats(fleet, spec.heartbeat_seconds, flushed, until)
        flushed = until
        with watch.time("heartbeat_write"):
            last_seen.write(batch)

    async def heartbeats() -> None:
        while True:
            await trio.sleep(spec.heartbeat_flush_seconds)
            flush_heartbeats()

    async def admin_and_controller() -> None:
        await trio.sleep(ROLLOUT_START_SECONDS)
        for group, size in group_sizes(spec.makeup.devices).items():
            if group == "it-pilot":
                continue  # the pilots of the first group's rollout
            with watch.time("start_rollout"):
                start_rollout(hub_dir, release, group, admin_plan(group, size),
                              actor="admin", now=virtual_now())
        while True:
            with watch.time("controller"):
                runner.run_if_due()
            with watch.time("mirror_refresh"):
                mirror.refresh()
            await trio.sleep(spec.controller_seconds)

    try:
        with watch.time("mirror_refresh"):
            mirror.refresh()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(admin_and_controller)
            nursery.start_soon(heartbeats)
            for device in fleet:
                nursery.start_soon(run_device, device)
            await trio.sleep(spec.report_after_hours * HOUR)
            nursery.cancel_scope.cancel()
        flush_heartbeats()
    finally:
        database.close()
    outcome.ended_at = virtual_now()
    for device in fleet:
        if not device.online(elapsed()):
            assert device.offline_from is not None
            outcome.fates[device.device_id].offline_since = (
                PUBLISHED + timedelta(seconds=device.offline_from))
    outcome.wall_seconds = time.perf_counter() - started
    outcome.timings, outcome.counts = watch.seconds, watch.counts
    return outcome
