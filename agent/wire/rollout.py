"""The rollout document of one device group, signed by the hub's online `rollout` role.

The delegation to `rollout` is limited to `rollouts/*`, so this document can point only
at release targets the admin signed; it cannot add one. A compromised hub can at worst
pause, halt or widen a rollout of an already signed release.
"""

from __future__ import annotations

import json
from enum import StrEnum

from pydantic import Field

from agent.errors import WireFormatError
from agent.wire.canonical import canonical_json
from agent.wire.validation import NAME_PATTERN, StrictModel, parse_model


class RolloutState(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    HALTED = "halted"


class RolloutEntry(StrictModel):
    release: str = Field(pattern=r"^releases/", description="release target path")
    state: RolloutState = RolloutState.ACTIVE
    stage_percent: int = Field(default=100, ge=0, le=100)
    started_at: str


class GroupRollouts(StrictModel):
    group: str = Field(pattern=NAME_PATTERN)
    rollouts: list[RolloutEntry] = Field(default_factory=list)

    def to_bytes(self) -> bytes:
        return canonical_json(self.model_dump(mode="json"))

    @classmethod
    def from_bytes(cls, data: bytes, source: str) -> GroupRollouts:
        try:
            decoded = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise WireFormatError(f"{source}: not JSON: {exc}") from None
        return parse_model(cls, decoded, source)


def rollout_target_path(group: str) -> str:
    """`rollouts/GROUP.json`: one path segment, as the `rollouts/*` delegation requires."""
    return f"rollouts/{group}.json"
