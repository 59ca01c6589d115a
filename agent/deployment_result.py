"""The signed result record a deployment leaves in the outbox when it ends (or when it
reports not-ready), built from what the journal holds about it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from agent import __version__
from agent.device_identity import DeviceIdentity
from agent.journal import Deployment
from agent.lifecycle import State
from agent.wire.health_signals import HealthSignals
from agent.wire.release import ReleaseInfo
from agent.wire.result import Outcome, ResultRecord, SignedResult


def signed_result(
    identity: DeviceIdentity,
    deployment: Deployment,
    info: ReleaseInfo,
    outcome: Outcome,
    reason: str,
    detail: dict[str, Any],
    end_state: State,
) -> tuple[str, bytes]:
    """(record id, signed body) for the outbox; `detail` is what is being journaled with it."""
    merged = deployment.detail.updated(detail, f"{deployment.release}: result")

    def span(start: State, end: State) -> float | None:
        if start in merged.at and end in merged.at:
            return round(merged.at[end] - merged.at[start], 3)
        return None

    timings = {
        name: value
        for name, value in {
            "download_s": span(State.DOWNLOADING, State.VERIFIED),
            "snapshot_s": span(State.SNAPSHOTTING, State.INSTALLING),
            "install_s": span(State.INSTALLING, State.CHECKING),
            "health_s": span(State.CHECKING, end_state),
            "revert_s": span(State.REVERTING, end_state),
        }.items()
        if value is not None and value >= 0
    }
    record = ResultRecord(
        record_id=str(uuid.uuid4()),
        device_id=identity.device_id,
        release=deployment.release,
        name=info.manifest.name,
        version=info.manifest.version,
        outcome=outcome,
        reason=reason or (merged.failure or ""),
        started_at=deployment.created_at,
        finished_at=datetime.now(UTC).isoformat(timespec="seconds"),
        timings=timings,
        bytes_from_peers=merged.bytes_from_peers,
        bytes_from_hub=merged.bytes_from_hub,
        agent_version=__version__,
        signals=HealthSignals(before=merged.signals_before, after=merged.signals_after)
        if outcome is Outcome.INSTALLED and merged.signals_before and merged.signals_after
        else None,
    )
    return record.record_id, SignedResult.sign(record, identity.private_key).to_bytes()
