"""The rollout document of one device group, signed by the hub's online `rollout` role.

The delegation to `rollout` is limited to `rollouts/*`, so this document can point only
at release targets the admin signed; it cannot add one. A compromised hub can at worst
pause, halt or widen a rollout of an already signed release.

A rollout moves through stages (percentages of the group, e.g. 2 → 25 → 100). Each
device decides from a stable hash of (device id, release) whether it is in the current
stage (`agent.rollout_selection`), so membership only grows and the document needs no
per-device list; explicit pilot devices and pilot groups are in every stage. Documents
written before stages existed carry only `stage_percent`: they read as a single stage.

`held_devices` lists devices the rollout goes on without: the hub's compatibility hold
(hub/compat/hold.py) found their combination of OS, model or packages failing the
release significantly more often than the rest. A listed device neither starts the
release nor goes on with a downloaded one, whatever its stage. The key is left out of
the document while the list is empty, so agents that predate it read the documents of
rollouts without holds as before.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from enum import StrEnum
from typing import Any

from pydantic import Field, SerializerFunctionWrapHandler, model_serializer, model_validator

from agent.wire.canonical import canonical_json
from agent.wire.validation import NAME_PATTERN, StrictModel, parse_json_model

DEVICE_ID_PATTERN = r"^[0-9a-z-]{4,64}$"
MAX_STAGES = 20
MAX_PILOT_DEVICES = 1000
MAX_PILOT_GROUPS = 100
MAX_HELD_DEVICES = 10_000


class RolloutState(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    HALTED = "halted"


def stages_problem(stages: Sequence[int]) -> str | None:
    """Why `stages` is not a valid stage list, or None: 1 to MAX_STAGES percentages, each
    in 0..100, strictly increasing (a stage that does not widen the rollout means nothing).
    A first stage of 0 % holds the explicit pilots only."""
    if not stages:
        return "at least one stage is needed, e.g. 2,25,100"
    if len(stages) > MAX_STAGES:
        return f"{len(stages)} stages; at most {MAX_STAGES}"
    for stage in stages:
        if not 0 <= stage <= 100:
            return f"stage {stage}% is outside 0..100"
    for before, after in zip(stages, stages[1:], strict=False):
        if after <= before:
            return f"stages must increase: {after}% follows {before}%"
    return None


class RolloutEntry(StrictModel):
    release: str = Field(pattern=r"^releases/", description="release target path")
    state: RolloutState = RolloutState.ACTIVE
    stage_percent: int = Field(default=100, ge=0, le=100, description="the current stage's")
    stages: list[int] = Field(default_factory=list, max_length=MAX_STAGES)
    current_stage: int = Field(default=0, ge=0)
    pilot_devices: list[str] = Field(default_factory=list, max_length=MAX_PILOT_DEVICES)
    pilot_groups: list[str] = Field(default_factory=list, max_length=MAX_PILOT_GROUPS)
    reason: str = Field(default="", max_length=500, description="why paused or halted")
    started_at: str
    held_devices: list[str] = Field(default_factory=list, max_length=MAX_HELD_DEVICES)

    @model_serializer(mode="wrap")
    def _without_empty_holds(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if not self.held_devices:
            data.pop("held_devices", None)
        return data

    @model_validator(mode="before")
    @classmethod
    def _single_stage_when_unstaged(cls, data: Any) -> Any:
        """A document without `stages` (written before stages existed) is one stage."""
        if isinstance(data, dict) and not data.get("stages"):
            return {**data, "stages": [data.get("stage_percent", 100)], "current_stage": 0}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> RolloutEntry:
        problem = stages_problem(self.stages)
        if problem:
            raise ValueError(problem)
        if self.current_stage >= len(self.stages):
            raise ValueError(
                f"current_stage {self.current_stage} but only {len(self.stages)} stage(s)"
            )
        if self.stage_percent != self.stages[self.current_stage]:
            raise ValueError(
                f"stage_percent {self.stage_percent} is not stage {self.current_stage}'s "
                f"{self.stages[self.current_stage]}%"
            )
        for device in self.pilot_devices:
            if not _matches(DEVICE_ID_PATTERN, device):
                raise ValueError(f"pilot device {device!r} is not a device id")
        for group in self.pilot_groups:
            if not _matches(NAME_PATTERN, group):
                raise ValueError(f"pilot group {group!r} is not a group name")
        for device in self.held_devices:
            if not _matches(DEVICE_ID_PATTERN, device):
                raise ValueError(f"held device {device!r} is not a device id")
        return self


class GroupRollouts(StrictModel):
    group: str = Field(pattern=NAME_PATTERN)
    rollouts: list[RolloutEntry] = Field(default_factory=list)

    def to_bytes(self) -> bytes:
        return canonical_json(self.model_dump(mode="json"))

    @classmethod
    def from_bytes(cls, data: bytes, source: str) -> GroupRollouts:
        return parse_json_model(cls, data, source)


def rollout_target_path(group: str) -> str:
    """`rollouts/GROUP.json`: one path segment, as the `rollouts/*` delegation requires."""
    return f"rollouts/{group}.json"


def _matches(pattern: str, text: str) -> bool:
    return re.match(pattern, text) is not None
