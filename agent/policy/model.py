"""A group's policy as the admin writes it (TOML) and as every agent of the group reads
it back from signed metadata. The endpoint defines what it accepts: the hub validates
`policy set` with this same model.

A bad policy is refused as a whole, every problem named by its key
(`windows.0.when: 'Mon 25:00-26:00': hour 25 is not 00-23`); nothing of it is used.
"""

from __future__ import annotations

import fnmatch
from typing import Literal

from pydantic import Field, field_validator, model_validator

from agent.errors import PolicyError
from agent.policy.windows import WeeklyRange, load_zone
from agent.wire.decoding import decode_toml
from agent.wire.release import Severity
from agent.wire.validation import StrictModel, parse_model

MAX_POLICY_BYTES = 64 * 1024

_LABEL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"


def policy_target_path(group: str) -> str:
    """`policies/GROUP.toml`: signed by the offline release key, like a release."""
    return f"policies/{group}.toml"


class Window(StrictModel):
    """A named maintenance window: one or more weekly ranges in one time zone."""

    name: str = Field(pattern=_LABEL_PATTERN)
    when: list[str] = Field(min_length=1)
    timezone: str | None = Field(default=None, description="overrides the policy's zone")

    @field_validator("when", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value

    @field_validator("when")
    @classmethod
    def _ranges(cls, value: list[str]) -> list[str]:
        for spec in value:
            WeeklyRange.parse(spec)
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is not None:
            load_zone(value)
        return value

    def ranges(self) -> list[WeeklyRange]:
        return [WeeklyRange.parse(spec) for spec in self.when]


class Deferral(StrictModel):
    """Releases that are not security updates wait `days` after their publication."""

    days: float = Field(default=0, ge=0, le=365)
    security_severities: list[Severity] = Field(
        default_factory=lambda: [Severity.CRITICAL, Severity.IMPORTANT]
    )
    security_categories: list[str] = Field(default_factory=lambda: ["security"])


class Blocklist(StrictModel):
    """Shell patterns (`nvidia-*`) that keep matching releases off the group's devices."""

    releases: list[str] = Field(
        default_factory=list, description="NAME or NAME@VERSION patterns"
    )
    categories: list[str] = Field(default_factory=list)

    def match(self, name: str, version: str, category: str) -> str | None:
        """Why a release is blocked, or None."""
        for pattern in self.releases:
            if fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(
                f"{name}@{version}", pattern
            ):
                return f"blocklisted by release pattern {pattern!r}"
        for pattern in self.categories:
            if fnmatch.fnmatchcase(category, pattern):
                return f"blocklisted by category pattern {pattern!r}"
        return None


class Disruption(StrictModel):
    """The disruption budget: at most `max_concurrent` devices of the group (or of one
    value of label `per_label`) installing or rebooting at once, by hub-granted leases."""

    max_concurrent: int = Field(ge=1, le=100000)
    per_label: str | None = Field(default=None, pattern=_LABEL_PATTERN)
    lease_minutes: float = Field(default=60, gt=0, le=24 * 60)


class Policy(StrictModel):
    """One device group's policy; see the README section "Policies" for every key."""

    timezone: str = "UTC"
    paused: bool = False
    jitter_minutes: float = Field(default=0, ge=0, le=24 * 60)
    reboot: Literal["window", "deadline"] = Field(
        default="window",
        description="window: reboot only inside a window; deadline: also once the "
        "deadline has passed",
    )
    windows: list[Window] = Field(default_factory=list)
    deadline_hours: dict[Severity, float] = Field(default_factory=dict)
    deferral: Deferral = Deferral()
    blocklist: Blocklist = Blocklist()
    disruption: Disruption | None = None

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        load_zone(value)
        return value

    @field_validator("deadline_hours", mode="before")
    @classmethod
    def _known_severities(cls, value: object) -> object:
        if isinstance(value, dict):
            known = [severity.value for severity in Severity]
            for key in value:
                if key not in known:
                    raise ValueError(
                        f"unknown severity {key!r} (use {', '.join(known)})"
                    )
        return value

    @field_validator("deadline_hours")
    @classmethod
    def _non_negative(cls, value: dict[Severity, float]) -> dict[Severity, float]:
        for severity, hours in value.items():
            if hours < 0:
                raise ValueError(f"{severity}: {hours} hours is negative")
        return value

    @model_validator(mode="after")
    def _unique_window_names(self) -> Policy:
        names = [window.name for window in self.windows]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"windows: names must be unique, {duplicates} repeat")
        return self

    @classmethod
    def from_toml(cls, data: bytes | str, source: str) -> Policy:
        """Parse and validate; PolicyError names `source` and every bad key."""
        if isinstance(data, bytes):
            if len(data) > MAX_POLICY_BYTES:
                raise PolicyError(f"{source}: larger than {MAX_POLICY_BYTES} bytes")
            try:
                data = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise PolicyError(f"{source}: not UTF-8: {exc}") from None
        decoded = decode_toml(data, source, PolicyError)
        return parse_model(cls, decoded, source, PolicyError)


NO_POLICY = Policy()
"""A group without a published policy: any time, no deadline, no deferral, no budget."""
