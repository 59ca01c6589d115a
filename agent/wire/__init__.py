"""Formats the endpoint and the hub both speak. The endpoint defines what it accepts;
the hub imports these to produce exactly that.

- `release`: the custom fields of a signed release target (install spec, health checks).
- `rollout`: the per-group rollout document signed by the hub's online rollout key.
- `result`: a device-signed result record.
"""

from agent.wire.release import (
    CommandHealthCheck,
    CommandPairInstall,
    FileHashHealthCheck,
    FileTreeInstall,
    HealthCheck,
    HttpHealthCheck,
    InstallSpec,
    ProcessHealthCheck,
    ReleaseInfo,
    ReleaseManifest,
    Severity,
    TcpHealthCheck,
    TorrentRef,
    release_target_path,
)
from agent.wire.result import Outcome, ResultRecord, SignedResult
from agent.wire.rollout import GroupRollouts, RolloutEntry, RolloutState, rollout_target_path

__all__ = [
    "CommandHealthCheck",
    "CommandPairInstall",
    "FileHashHealthCheck",
    "FileTreeInstall",
    "GroupRollouts",
    "HealthCheck",
    "HttpHealthCheck",
    "InstallSpec",
    "Outcome",
    "ProcessHealthCheck",
    "ReleaseInfo",
    "ReleaseManifest",
    "ResultRecord",
    "RolloutEntry",
    "RolloutState",
    "Severity",
    "SignedResult",
    "TcpHealthCheck",
    "TorrentRef",
    "release_target_path",
    "rollout_target_path",
]
