"""What the journal keeps about one deployment besides its state: a typed, validated
record, not a free dict, so a misspelt key or a counter stored as text is an error where
it is written, not a wrong recovery decision after the next crash.

Journals written before this record existed hold the same facts as a flat JSON object
(`at_downloading`, `starts_snapshotting`, …); they still load (`_from_flat_journal`),
and any key this version does not know is kept under `unknown` rather than lost.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, ValidationError, model_validator

from agent.errors import JournalDetailError
from agent.lifecycle import State
from agent.wire.health_signals import SignalWindow
from agent.wire.validation import StrictModel, describe_validation_error


class DeploymentDetail(StrictModel):
    target: dict[str, Any] | None = None
    """The signed TUF target the deployment acts on, pinned at creation (recovery needs
    no network)."""
    payload: str | None = None
    """Where the verified payload lies."""
    bytes_from_peers: int = Field(default=0, ge=0)
    bytes_from_hub: int = Field(default=0, ge=0)
    snapshot: str | None = None
    """The snapshot manifest (JSON), journaled before the install starts."""
    boot_id: str | None = None
    """The boot the deployment was in when it asked for a reboot."""
    failure: str | None = None
    """Why a revert began."""
    boots: int = Field(default=0, ge=0)
    """Agent starts in a boot-counted state (lifecycle.BOOT_COUNTED)."""
    revert_boots: int = Field(default=0, ge=0)
    starts: dict[State, int] = Field(default_factory=dict)
    """Agent starts per state before the install since its step last ended
    (lifecycle.LOOP_COUNTED: state-loop detection)."""
    at: dict[State, float] = Field(default_factory=dict)
    """When each state was last entered (Unix time): the result's timings."""
    not_ready_reported: bool = False
    not_ready_for: str = ""
    """The unmet requirements last reported not-ready (agent/readiness.py)."""
    signals_before: SignalWindow | None = None
    """The release's health signals over the window just before its install."""
    signals_after: SignalWindow | None = None
    """... and over the window after its health checks passed (agent/health_signals.py)."""
    cleared_at: str | None = None
    """When an admin cleared a failed revert (`meisitong-agent clear`)."""
    cleared_by: str | None = None
    unknown: dict[str, Any] = Field(default_factory=dict)
    """Keys of an older or newer journal this version does not know: kept, not used."""

    @model_validator(mode="before")
    @classmethod
    def _from_flat_journal(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        known = set(cls.model_fields)
        converted: dict[str, Any] = {"unknown": dict(data.get("unknown") or {})}
        at = dict(data.get("at") or {})
        starts = dict(data.get("starts") or {})
        states = {state.value for state in State}
        for key, value in data.items():
            if key in ("at", "starts", "unknown"):
                continue
            if key.startswith("at_") and key[3:] in states:
                at[key[3:]] = value
            elif key.startswith("starts_") and key[7:] in states:
                starts[key[7:]] = value
            elif key in known:
                converted[key] = value
            else:
                converted["unknown"][key] = value
        return {**converted, "at": at, "starts": starts}

    @classmethod
    def parse(cls, data: Any, source: str) -> DeploymentDetail:
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise JournalDetailError(describe_validation_error(exc, source)) from None

    def updated(self, changes: dict[str, Any], source: str) -> DeploymentDetail:
        """A copy with `changes` (field names, or the flat `at_STATE` / `starts_STATE`
        keys), validated like a record read from the journal."""
        merged: dict[str, Any] = {**self.model_dump(mode="json"), **changes}
        return self.parse(merged, source)

    def to_json(self) -> str:
        return self.model_dump_json(exclude_defaults=True)

    def count(self, key: str) -> int:
        """A start counter by its journal key: `boots`, `revert_boots`, `starts_STATE`."""
        if key.startswith("starts_"):
            return self.starts.get(State(key.removeprefix("starts_")), 0)
        if key in ("boots", "revert_boots"):
            return int(getattr(self, key))
        raise KeyError(key)
