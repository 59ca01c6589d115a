"""A simulated fleet of lightweight agents against the real hub-side rollout machinery.

Real: the hub directory (TUF repository, keys, SQLite), the published release, the rollout
started with `start_rollout`, the controller (`RolloutRuleRunner` → `apply_rollout_rules`
→ `decide`) and the documents it signs, the agent's `MetadataClient` verifying them,
`select_releases` and its bucketing, device-signed result records ingested by
`ingest_result`. Simulated: what a device does once it has chosen the release (download,
install, health check take a random time, then succeed or fail with the injected
probability), and enrollment (rows are written straight into `devices`; enrollment has
its own tests).

Two stand-ins, both because the simulation runs on trio's MockClock (days pass in
seconds): the HTTP layer is a fetcher that reads the files the hub serves straight from
its directory (a real socket would let the mock clock jump in mid-request), and one
metadata mirror refreshes the verified documents once a simulated minute for all devices
(all devices of a group read the same signed document; verifying it 1,000 times a
minute would prove nothing more).

Devices act as DESIGN.md §4 step 3 says: during their maintenance window (a daily window
at a random time of day, or always with `windowed=False`) they poll the metadata; a
device in the current stage of an active rollout downloads the release (it has then
*received* it), installs it and reports.

Health signals (optional, `crash_rate_per_hour`): each device reports, in its result, a
window of `signal_window_hours` before its install and one after it, with Poisson crash
counts at its own base rate (the fleet's, varied per device) before and that rate times
`crash_factor` after, and its processes' memory (varied per device, times
`memory_factor` after). Health checks pass unless `failure_rate` says otherwise, so a
`crash_factor=2` release is one no health check catches. With `control_interval_hours`
the release declares `[signals]` and every device not in the current stage measures a
control window (same length, its base rate: it runs the old version) each interval and
posts it signed, as agents do (agent/control_signals.py), through `ingest_control_window`.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib import parse

import trio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from tuf.api.exceptions import DownloadHTTPError
from tuf.ngclient import FetcherInterface

from agent.metadata_client import MetadataClient
from agent.rollout_selection import control_releases, select_releases
from agent.wire.control_signals import ControlWindow, SignedControlWindow
from agent.wire.health_signals import HealthSignals, SignalWindow
from agent.wire.release import ReleaseInfo
from agent.wire.result import Outcome, ResultRecord, SignedResult
from agent.wire.rollout import GroupRollouts
from hub.database import HubDatabase
from hub.devices.results_store import ingest_result
from hub.hub_dir import HubDir
from hub.hub_init import initialize_hub
from hub.releases.publisher import publish_release
from hub.rollouts.control_windows import ingest_control_window
from hub.rollouts.rules import HaltTest, RolloutPlan, RolloutRules
from hub.rollouts.runner import RolloutRuleRunner
from hub.rollouts.store import read_rollout
from tests.fleet import tar_bytes

EPOCH = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
GROUP = "fleet"
HUB_URL = "http://hub.invalid"
DAY = 86400.0


@dataclass(frozen=True)
class FleetSpec:
    devices: int = 1000
    failure_rate: float = 0.0
    seed: int = 0
    halt_test: HaltTest = HaltTest.SPRT
    stages: tuple[int, ...] = (2, 25, 100)
    rules: dict[str, Any] = field(default_factory=dict)
    windowed: bool = True
    window_hours: float = 2.0
    poll_minutes: float = 15.0
    install_minutes: tuple[float, float] = (5.0, 30.0)
    controller_seconds: float = 60.0
    max_days: float = 10.0
    crash_rate_per_hour: float | None = None
    """None: devices report no health signals (as agents before them did)."""
    crash_factor: float = 1.0
    memory_factor: float = 1.0
    signal_window_hours: float = 1.0
    control_interval_hours: float | None = None
    """None: devices send no control windows (the hub falls back to the stand-in)."""


@dataclass
class FleetOutcome:
    received: int = 0
    """Devices that downloaded the release."""
    receivers: list[str] = field(default_factory=list)
    failed: int = 0
    reported: int = 0
    state: str = ""
    final_stage: int = 0
    stage_percent: int = 0
    hours: float = 0.0
    audit: list[dict[str, Any]] = field(default_factory=list)
    release: str = ""
    devices: list[str] = field(default_factory=list)
    control_windows: int = 0
    """Control windows the devices sent (and the hub took)."""

    @property
    def halted(self) -> bool:
        return self.state == "halted"


class DirectoryFetcher(FetcherInterface):
    """What the hub's /metadata and /targets mounts serve, read from its directory."""

    def __init__(self, hub_dir: HubDir) -> None:
        self.hub_dir = hub_dir

    def _fetch(self, url: str) -> Iterator[bytes]:
        path = parse.unquote(url.removeprefix(f"{HUB_URL}/"))
        mount, _, rest = path.partition("/")
        base = {"metadata": self.hub_dir.metadata, "targets": self.hub_dir.targets}.get(mount)
        file = base / rest if base is not None else None
        if file is None or ".." in rest.split("/") or not file.is_file():
            raise DownloadHTTPError(f"{url}: not found", 404)
        return iter([file.read_bytes()])


class MetadataMirror:
    """The group's verified rollout document, refreshed when the hub signs a new one."""

    def __init__(self, hub_dir: HubDir, workdir: Path) -> None:
        self.hub_dir = hub_dir
        self.client = MetadataClient(
            workdir / "metadata", workdir / "targets", HUB_URL,
            trusted_root=(hub_dir.metadata / "1.root.json").read_bytes(),
            fetcher=DirectoryFetcher(hub_dir),
        )
        self._timestamp = b""
        self.document = GroupRollouts(group=GROUP)
        self.releases: dict[str, ReleaseInfo] = {}

    def refresh(self) -> None:
        timestamp = (self.hub_dir.metadata / "timestamp.json").read_bytes()
        if timestamp == self._timestamp:
            return  # ngclient would fetch this same timestamp and stop there
        self.client.refresh()
        self._timestamp = timestamp
        data = self.client.rollout_document(GROUP)
        self.document = GroupRollouts.from_bytes(data or b'{"group":"fleet"}', "mirror")
        for entry in self.document.rollouts:
            if entry.release not in self.releases:
                target = self.client.release_target(entry.release)
                self.releases[entry.release] = ReleaseInfo.from_custom(target.custom,
                                                                        entry.release)


@dataclass
class SimulatedDevice:
    device_id: str
    key: Ed25519PrivateKey
    fails: bool
    window_start: float
    install_seconds: float
    received: bool = False
    reported: bool = False
    crash_rate: float = 0.0
    rss_bytes: float = 0.0


def _signals_section(spec: FleetSpec) -> str:
    if spec.control_interval_hours is None or spec.crash_rate_per_hour is None:
        return ""
    return (f"[signals]\nprocesses = [\"app\"]\n"
            f"window_seconds = {round(spec.signal_window_hours * 3600)}\n"
            f"control_interval = {round(spec.control_interval_hours * 3600)}\n")


def virtual_now() -> datetime:
    return EPOCH + timedelta(seconds=trio.current_time())


def prepare_hub(workdir: Path, spec: FleetSpec) -> tuple[HubDir, str, list[SimulatedDevice]]:
    hub_dir = HubDir(workdir / "hub")
    initialize_hub(hub_dir, None, "127.0.0.1:1", "", "127.0.0.1:2")
    payload, manifest = workdir / "app.tar", workdir / "app.toml"
    payload.write_bytes(tar_bytes({"VERSION": b"2.0.0"}))
    manifest.write_text('name = "app"\nversion = "2.0.0"\nseverity = "important"\n'
                        'category = "application"\n[install]\ntype = "file-tree"\n'
                        'root = "/opt/app"\n' + _signals_section(spec))
    release = publish_release(hub_dir, manifest, payload).target
    rng = random.Random(spec.seed)
    devices = []
    for _ in range(spec.devices):
        low, high = spec.install_minutes
        devices.append(SimulatedDevice(
            device_id=f"dev-{rng.getrandbits(80):020x}",
            key=Ed25519PrivateKey.generate(),
            fails=rng.random() < spec.failure_rate,
            window_start=rng.uniform(0, DAY),
            install_seconds=rng.uniform(low, high) * 60,
        ))
    signal_rng = random.Random(f"{spec.seed}/signals")  # leaves `rng`'s fleets as they were
    for device in devices:
        device.crash_rate = (spec.crash_rate_per_hour or 0.0) * signal_rng.uniform(0.5, 1.5)
        device.rss_bytes = signal_rng.uniform(80e6, 120e6)
    database = HubDatabase(hub_dir.database)
    try:
        with database.transaction() as db:
            db.executemany(
                "INSERT INTO devices (device_id, public_key, name, hostname, grp, site, "
                "status, enrolled_at) VALUES (?, ?, ?, ?, ?, 'hq', 'accepted', ?)",
                [(d.device_id, d.key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw),
                  d.device_id, d.device_id, GROUP, EPOCH.isoformat()) for d in devices],
            )
    finally:
        database.close()
    return hub_dir, release, devices


async def simulate(spec: FleetSpec, workdir: Path) -> FleetOutcome:
    """Run one rollout to its end (halted, or every device reported) on trio's clock,
    which must be a MockClock: the whole run is simulated days."""
    from hub.rollouts.changes import start_rollout

    hub_dir, release, devices = prepare_hub(workdir, spec)
    rules = RolloutRules(halt_test=spec.halt_test, **spec.rules)
    start_rollout(hub_dir, release, GROUP, RolloutPlan(stages=spec.stages, rules=rules),
                  actor="simulation", now=virtual_now())
    mirror = MetadataMirror(hub_dir, workdir)
    runner = RolloutRuleRunner(hub_dir, now=virtual_now)
    results = HubDatabase(hub_dir.database)
    outcome = FleetOutcome(release=release, devices=[d.device_id for d in devices])
    in_flight = 0

    def poisson(rng: random.Random, mean: float) -> int:
        """Knuth's method: fine for the small means simulated here."""
        limit, count, product = pow(2.718281828459045, -mean), 0, rng.random()
        while product > limit:
            count += 1
            product *= rng.random()
        return count

    def signals(device: SimulatedDevice, installed_at: float) -> HealthSignals | None:
        if spec.crash_rate_per_hour is None:
            return None
        rng = random.Random(f"{spec.seed}/{device.device_id}/signals")
        hours = spec.signal_window_hours
        seconds = hours * 3600

        def measured(start: float, factor: float, memory: float) -> SignalWindow:
            return SignalWindow(
                started_at=(EPOCH + timedelta(seconds=start)).isoformat(),
                seconds=seconds, restarts=0,
                crashes=poisson(rng, device.crash_rate * factor * hours),
                rss_bytes=int(device.rss_bytes * memory * rng.uniform(0.95, 1.05)),
            )

        return HealthSignals(
            before=measured(installed_at - device.install_seconds - seconds, 1.0, 1.0),
            after=measured(installed_at, spec.crash_factor, spec.memory_factor),
        )

    async def send_control_windows(device: SimulatedDevice) -> None:
        """While not in the current stage: one window per interval at the base rate."""
        assert spec.control_interval_hours is not None
        rng = random.Random(f"{spec.seed}/{device.device_id}/control")
        interval = spec.control_interval_hours * 3600
        seconds = spec.signal_window_hours * 3600
        await trio.sleep(rng.uniform(0, interval))
        while not device.received:
            if release in control_releases(mirror.document, device.device_id,
                                           mirror.releases):
                start = trio.current_time()
                await trio.sleep(seconds)
                if device.received:  # its install began inside the window
                    return
                window = SignalWindow(
                    started_at=(EPOCH + timedelta(seconds=start)).isoformat(),
                    seconds=seconds, restarts=0,
                    crashes=poisson(rng, device.crash_rate * spec.signal_window_hours),
                    rss_bytes=int(device.rss_bytes * rng.uniform(0.95, 1.05)))
                record = ControlWindow(device_id=device.device_id, release=release,
                                       window=window)
                ingest_control_window(results, SignedControlWindow.sign(record, device.key),
                                      virtual_now())
                outcome.control_windows += 1
                await trio.sleep(max(interval - seconds, 0.0))
            else:
                await trio.sleep(interval)

    def report(device: SimulatedDevice, installed_at: float) -> None:
        record = ResultRecord(
            record_id=uuid.uuid4().hex, device_id=device.device_id, release=release,
            name="app", version="2.0.0",
            outcome=Outcome.REVERTED if device.fails else Outcome.INSTALLED,
            reason="health check failed" if device.fails else "",
            started_at=virtual_now().isoformat(), finished_at=virtual_now().isoformat(),
            signals=None if device.fails else signals(device, installed_at),
        )
        ingest_result(results, SignedResult.sign(record, device.key))
        device.reported = True
        outcome.reported += 1
        outcome.failed += device.fails

    def window_open(device: SimulatedDevice) -> float:
        """Seconds until the device's window is open (0 when it is)."""
        if not spec.windowed:
            return 0.0
        into = (trio.current_time() - device.window_start) % DAY
        return 0.0 if into < spec.window_hours * 3600 else DAY - into

    async def run_device(device: SimulatedDevice) -> None:
        nonlocal in_flight
        device_rng = random.Random(device.device_id)
        await trio.sleep(device_rng.uniform(0, spec.poll_minutes * 60))
        while True:
            wait = window_open(device)
            if wait:
                await trio.sleep(wait + device_rng.uniform(0, spec.poll_minutes * 60))
                continue
            chosen, _ = select_releases(mirror.document, device.device_id, mirror.releases, {})
            if chosen:
                device.received = True
                outcome.received += 1
                outcome.receivers.append(device.device_id)
                in_flight += 1
                await trio.sleep(device.install_seconds)
                installed_at = trio.current_time()
                if spec.crash_rate_per_hour is not None and not device.fails:
                    await trio.sleep(spec.signal_window_hours * 3600)  # the after window
                report(device, installed_at)
                in_flight -= 1
                return
            await trio.sleep(spec.poll_minutes * 60)

    def finished() -> bool:
        with results.transaction() as db:
            record = read_rollout(db, release, GROUP)
        assert record is not None
        outcome.state, outcome.final_stage = record.state.value, record.current_stage
        outcome.stage_percent = record.stage_percent
        everyone = outcome.reported == len(devices)
        return (record.state.value != "active" and in_flight == 0) or everyone

    try:
        async with trio.open_nursery() as nursery:
            for device in devices:
                nursery.start_soon(run_device, device)
                if spec.control_interval_hours is not None:
                    nursery.start_soon(send_control_windows, device)
            with trio.move_on_after(spec.max_days * DAY):
                while True:
                    runner.run_if_due()
                    mirror.refresh()
                    if finished():
                        break
                    await trio.sleep(spec.controller_seconds)
            nursery.cancel_scope.cancel()
        finished()
        outcome.hours = trio.current_time() / 3600
        outcome.audit = [dict(row) for row in results.query(
            "SELECT actor, action, detail FROM audit WHERE action LIKE 'rollout.%' ORDER BY id")]
    finally:
        results.close()
    return outcome
