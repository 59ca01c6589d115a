"""Simulated devices for policy tests on trio's MockClock: the real PolicyGate, a real
journal, and (for budgets) the hub's real lease store over real SQLite, called in-process
instead of over HTTP — hypercorn's socket timeouts cannot run on a mock clock. Only the
install itself is simulated (a sleep of `install_minutes`).

`run_device` drives the gate the way agent/daemon.py does: ask, and on NotEligibleYet
sleep with `gate.sleep(poll)`, so a test can count how often it woke.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import trio

from agent.journal import Journal
from agent.policy import DeviceFacts
from agent.policy.clock import WallClock
from agent.policy.gate import NotEligibleYet, PolicyGate
from agent.policy.model import Disruption, Policy
from agent.policy.source import PolicyUpdate
from agent.wire.lease import LeaseAnswer, LeaseRequest
from agent.wire.release import ReleaseInfo, ReleaseManifest, TorrentRef
from hub.database import HubDatabase
from hub.policy.leases import acquire_lease, release_lease


def release_info(name: str = "demo-app", version: str = "1.0", severity: str = "moderate",
                 category: str = "application", published: datetime | None = None
                 ) -> tuple[str, ReleaseInfo]:
    assert published is not None
    manifest = ReleaseManifest.model_validate({
        "name": name, "version": version, "severity": severity, "category": category,
        "install": {"type": "file-tree", "root": "/opt/app"},
    })
    info = ReleaseInfo(manifest=manifest, payload_name=f"{name}.tar",
                       torrent=TorrentRef(path=f"releases/{name}/{version}/{name}.tar.torrent",
                                          info_hash_v1="0" * 40, info_hash_v2="0" * 64),
                       published_at=published.isoformat())
    return f"releases/{name}/{version}/{name}.tar", info


def update(policy_text: str, group: str = "office") -> PolicyUpdate:
    import hashlib
    policy = Policy.from_toml(policy_text, "test policy")
    return PolicyUpdate(group, policy, hashlib.sha256(policy_text.encode()).hexdigest(),
                        f"group {group}: test policy")


class StoreLeases:
    """LeaseService over hub/policy/leases.py's store, in-process, on the simulated clock."""

    def __init__(self, database: Path, device_id: str, budget: Disruption | None,
                 clock: WallClock) -> None:
        self.device_id, self.budget, self.clock = device_id, budget, clock
        self.database = _connection(database)

    def _request(self, action, group, scope, release, ttl) -> LeaseRequest:
        return LeaseRequest(action=action, device_id=self.device_id, group=group, scope=scope,
                            release=release, ttl_seconds=ttl,
                            issued_at=self.clock.now().isoformat())

    async def acquire(self, group: str, scope: str, release: str, ttl_seconds: int
                      ) -> LeaseAnswer:
        return acquire_lease(self.database, self._request("acquire", group, scope, release,
                                                          ttl_seconds), self.budget,
                             self.clock.now())

    async def release(self, group: str, scope: str, release: str) -> None:
        release_lease(self.database, self._request("release", group, scope, release, 1))


_CONNECTIONS: dict[Path, HubDatabase] = {}


def _connection(path: Path) -> HubDatabase:
    """One connection per simulated hub; no fsync per transaction: simulated weeks make
    thousands of lease requests, and durability is not what these tests are about."""
    if path not in _CONNECTIONS:
        database = HubDatabase(path)
        database.query("PRAGMA synchronous=OFF")
        _CONNECTIONS[path] = database
    return _CONNECTIONS[path]


@dataclass
class DeviceRun:
    name: str
    gate: PolicyGate
    clock: WallClock
    admitted_at: datetime | None = None
    installed: list[tuple[datetime, datetime]] = field(default_factory=list)
    wakeups: int = 0


async def run_device(device: DeviceRun, release: str, info: ReleaseInfo,
                     poll: float = 7 * 86400.0, install_minutes: float = 0.0) -> None:
    """Admit, then wait at the gate, install, finish — as the daemon does."""
    gate = device.gate
    while not gate.admit(release, info):
        device.wakeups += 1
        await gate.sleep(poll)
    device.admitted_at = device.clock.now()
    while True:
        try:
            await gate.wait_for_install(release, info)
        except NotEligibleYet:
            device.wakeups += 1
            await gate.sleep(poll)
            continue
        started = device.clock.now()
        await trio.sleep(install_minutes * 60)
        await gate.finished(release)
        device.installed.append((started, device.clock.now()))
        return


def new_gate(tmp: Path, name: str, clock: WallClock, policy_text: str,
             labels: dict[str, str] | None = None, leases=None) -> DeviceRun:
    journal = Journal(tmp / f"{name}.db")
    gate = PolicyGate(journal, DeviceFacts(f"dev-{name}", labels or {}), leases, clock)
    gate.apply(update(policy_text))
    return DeviceRun(name, gate, clock)


def hours(n: float) -> timedelta:
    return timedelta(hours=n)
