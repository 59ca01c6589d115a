"""What a rollout is asked to do: its stages and pilots, and the rules that advance or halt
it, with the documented defaults (README, "Staged rollouts").

A rollout's plan is stored with it when it starts and never changes afterwards, so the
controller's decisions can always be explained from what the admin asked for.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any

from pydantic import Field, field_validator

from agent.wire.rollout import (
    MAX_PILOT_DEVICES,
    MAX_PILOT_GROUPS,
    stages_problem,
)
from agent.wire.validation import NAME_PATTERN, StrictModel, parse_model
from hub.errors import RolloutError

DEFAULT_STAGES = (2, 25, 100)
DEFAULT_MIN_RESULTS = 20
DEFAULT_SUCCESS_THRESHOLD = 0.98
DEFAULT_SOAK_SECONDS = 3600
DEFAULT_SPRT_ALPHA = 0.05
DEFAULT_SPRT_BETA = 0.10
DEFAULT_REGRESSION_ALPHA = 0.01
DEFAULT_REGRESSION_MIN_RATIO = 1.25
DEFAULT_REGRESSION_MIN_DEVICES = 5
SPRT_FAILURE_RATE_FACTOR = 5.0
"""The failure rate the sequential test is tuned to catch fast, as a multiple of the
acceptable one (98 % success: 2 % acceptable, 10 % caught fast)."""


class HaltTest(StrEnum):
    SPRT = "sprt"
    """Wald's sequential test on every result, plus the fixed stage gate."""
    FIXED = "fixed"
    """Only the fixed stage gate: halt once a stage has its results and is below threshold.
    Kept to compare against (the fleet simulation), not recommended."""


class RolloutRules(StrictModel):
    """When the controller advances a stage or halts the rollout (hub/rollout_controller)."""

    min_results: int = Field(default=DEFAULT_MIN_RESULTS, ge=1, le=1_000_000)
    success_threshold: float = Field(default=DEFAULT_SUCCESS_THRESHOLD, gt=0, lt=1)
    soak_seconds: int = Field(default=DEFAULT_SOAK_SECONDS, ge=0, le=90 * 86400)
    halt_test: HaltTest = HaltTest.SPRT
    sprt_alpha: float = Field(default=DEFAULT_SPRT_ALPHA, gt=0, lt=0.5)
    sprt_beta: float = Field(default=DEFAULT_SPRT_BETA, gt=0, lt=0.5)
    regression_halt: bool = True
    """Halt when updated devices' health signals regress (hub/rollouts/regression.py);
    False opts the rollout out."""
    regression_alpha: float = Field(default=DEFAULT_REGRESSION_ALPHA, gt=0, lt=0.5)
    """Per look, shared (Bonferroni) by the signals tested."""
    regression_min_ratio: float = Field(default=DEFAULT_REGRESSION_MIN_RATIO, ge=1, le=100)
    """The smallest effect that halts: rate ratio (counts) or ratio of medians (levels)."""
    regression_min_devices: int = Field(default=DEFAULT_REGRESSION_MIN_DEVICES, ge=2,
                                        le=100_000)
    """Devices needed on each side before a signal is tested."""
    automatic: bool = True
    """False: the controller leaves the rollout alone (admins and tests drive it by hand)."""
    hold_flagged: bool = False
    """Opt-in: at every pass, before its halt rules, the controller holds the release for
    the rollout's devices in a combination the compatibility matrix flags (hub/compat/
    hold.py), and goes on for the others; their results then count for neither."""

    @property
    def acceptable_failure_rate(self) -> float:
        return 1 - self.success_threshold

    @property
    def unacceptable_failure_rate(self) -> float:
        """The SPRT's alternative hypothesis: five times the acceptable failure rate, and
        never closer to certainty than halfway between the acceptable rate and 1."""
        p0 = self.acceptable_failure_rate
        return min(p0 * SPRT_FAILURE_RATE_FACTOR, (p0 + 1) / 2)


class RolloutPlan(StrictModel):
    stages: tuple[int, ...] = DEFAULT_STAGES
    pilot_devices: tuple[str, ...] = Field(default=(), max_length=MAX_PILOT_DEVICES)
    """Device ids or names as given; `start_rollout` stores them resolved to ids."""
    pilot_groups: tuple[str, ...] = Field(default=(), max_length=MAX_PILOT_GROUPS)
    rules: RolloutRules = Field(default_factory=RolloutRules)

    @field_validator("stages")
    @classmethod
    def _stages_increase(cls, stages: tuple[int, ...]) -> tuple[int, ...]:
        problem = stages_problem(stages)
        if problem:
            raise ValueError(problem)
        return stages

    @field_validator("pilot_devices")
    @classmethod
    def _device_specs(cls, devices: tuple[str, ...]) -> tuple[str, ...]:
        for device in devices:
            if not 1 <= len(device) <= 128 or device != device.strip():
                raise ValueError(f"{device!r} is neither a device id nor a device name")
        return tuple(dict.fromkeys(devices))

    @field_validator("pilot_groups")
    @classmethod
    def _group_names(cls, groups: tuple[str, ...]) -> tuple[str, ...]:
        for group in groups:
            if not re.match(NAME_PATTERN, group):
                raise ValueError(
                    f"{group!r} is not a valid group name (lower-case letters, digits, "
                    "'.', '_', '-')"
                )
        return tuple(dict.fromkeys(groups))

    @classmethod
    def immediate(cls) -> RolloutPlan:
        """Everyone at once, no automatic rules: what `start_rollout` does when given no
        plan (tests and scripts that want a release everywhere now)."""
        return cls(stages=(100,), rules=RolloutRules(automatic=False))

    @classmethod
    def parse(cls, data: dict[str, Any], source: str = "rollout plan") -> RolloutPlan:
        """Validate, raising RolloutError with every problem named."""
        return parse_model(cls, data, source, error_type=RolloutError)

    @classmethod
    def from_json(cls, text: str) -> RolloutPlan:
        return cls.model_validate_json(text)

    def to_json(self) -> str:
        return self.model_dump_json()
