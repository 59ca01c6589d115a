"""The plain data a compliance report is computed from, whoever gathered it.

The hub gathers these from its database (hub/compliance/gather.py); the evidence
verifier rebuilds them from device-signed records and signed metadata
(hub/evidence_verify.py); a simulation makes them up. All times are aware datetimes in
UTC. Nothing here reads a database or a file, so a 10,000-device report is a loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from agent.policy import Policy
from agent.wire.rollout import RolloutEntry
from hub.devices.online_window import ONLINE_WITHIN_SECONDS


@dataclass(frozen=True)
class ReleaseFact:
    """What the admin signed about a release (its TUF target's custom fields)."""

    target: str
    name: str
    version: str
    severity: str
    category: str
    published_at: datetime


@dataclass(frozen=True)
class RolloutFact:
    """A rollout of a release to `group` (and its pilot groups), as its signed entry says."""

    group: str
    entry: RolloutEntry


@dataclass(frozen=True)
class DeviceFact:
    device_id: str
    name: str
    group: str
    site: str = ""
    last_seen: datetime | None = None
    """The hub's last contact with it (hub/devices/presence.py); None: never heard from."""


@dataclass(frozen=True)
class ResultFact:
    """One device-signed result record's facts."""

    device_id: str
    release: str
    outcome: str
    reason: str
    finished_at: datetime


@dataclass(frozen=True)
class AdminException:
    """An admin took (device, release) out of scope until `expires_at`, saying why."""

    device_id: str
    release: str
    reason: str
    expires_at: datetime
    created_by: str = ""
    created_at: datetime | None = None


@dataclass(frozen=True)
class Filters:
    group: str | None = None
    severity: str | None = None
    since: datetime | None = None
    """Releases published at or after this instant."""

    def as_dict(self) -> dict[str, str | None]:
        return {"group": self.group, "severity": self.severity,
                "since": self.since.isoformat() if self.since else None}


@dataclass
class ComplianceFacts:
    hub: str
    now: datetime
    releases: list[ReleaseFact]
    rollouts: dict[str, list[RolloutFact]]
    """Release target -> its rollouts; a release no group rolled out has no rows."""
    devices: list[DeviceFact]
    results: list[ResultFact]
    policies: dict[str, Policy]
    exceptions: list[AdminException] = field(default_factory=list)
    offline_after_seconds: float = ONLINE_WITHIN_SECONDS
    """Silent this long means offline: the window the console and /metrics use
    (hub/devices/online_window.py)."""
