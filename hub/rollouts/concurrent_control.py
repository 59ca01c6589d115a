"""Which control the regression test compares the updated devices with — pure, no I/O.

The treatment is the after windows of the devices that installed the release
(hub/rollouts/regression.py). The better control is *concurrent*: devices of the
rollout's audience that were not updated, measuring the same signals over the same
period (agent/wire/control_signals.py; they run the old version while the updated ones
run the new, so a fleet-wide change of load or a bad day hits both sides alike).

"The same period", precisely: the treatment's span runs from the earliest start to the
latest end of its after windows; a control window is of that period when its midpoint
lies in that span. Each control device's windows of the period are merged into one
(counts summed over the windows that measured them — a count some window lacks is left
out for that device — exposure summed, levels as the median of its windows), so every
device is one observation on each side, as the tests assume.

With fewer than `min_devices` such devices (a small group, agents that do not send
control windows, the treatment's very first windows), the control falls back to the
stand-in: the before-install windows of the reporting devices. `figures` says which was
used, for the audit entry.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from agent.wire.health_signals import (
    COUNT_SIGNALS,
    LEVEL_SIGNALS,
    MAX_WINDOW_SECONDS,
    SignalWindow,
)

CONCURRENT = "concurrent"
STAND_IN = "before-install stand-in"


@dataclass(frozen=True)
class ControlChoice:
    kind: str
    windows: tuple[SignalWindow, ...]
    figures: dict[str, Any] = field(default_factory=dict)


def _span(window: SignalWindow) -> tuple[datetime, datetime] | None:
    try:
        start = datetime.fromisoformat(window.started_at)
    except ValueError:
        return None
    if start.tzinfo is None:
        return None
    return start, start + timedelta(seconds=window.seconds)


def treatment_period(treatment: Sequence[SignalWindow]) -> tuple[datetime, datetime] | None:
    spans = [s for w in treatment if (s := _span(w)) is not None]
    if not spans:
        return None
    return min(s for s, _ in spans), max(e for _, e in spans)


def merge_windows(windows: Sequence[SignalWindow]) -> SignalWindow:
    """One device's windows as one observation (module docstring); the latest windows
    first up to a week of exposure, which a window may not exceed."""
    kept: list[SignalWindow] = []
    total = 0.0
    for window in reversed(windows):
        if total + window.seconds > MAX_WINDOW_SECONDS:
            break
        kept.append(window)
        total += window.seconds
    kept.reverse()
    merged: dict[str, Any] = {"started_at": kept[0].started_at, "seconds": total}
    for name in COUNT_SIGNALS:
        values = [getattr(w, name) for w in kept]
        merged[name] = None if None in values else sum(values)
    for name in LEVEL_SIGNALS:
        levels = [getattr(w, name) for w in kept if getattr(w, name) is not None]
        merged[name] = statistics.median(levels) if levels else None
    if merged["rss_bytes"] is not None:
        merged["rss_bytes"] = int(merged["rss_bytes"])
    return SignalWindow(**merged)


def choose_control(treatment: Sequence[SignalWindow], stand_in: Sequence[SignalWindow],
                   concurrent: Mapping[str, Sequence[SignalWindow]],
                   min_devices: int) -> ControlChoice:
    """The concurrent control when at least `min_devices` devices measured windows of the
    treatment's period, else the stand-in. `concurrent`: each not-updated device's
    control windows (any period)."""
    period = treatment_period(treatment)
    merged: list[SignalWindow] = []
    in_period = 0
    if period is not None:
        begin, end = period
        for device in sorted(concurrent):
            of_period = []
            for window in concurrent[device]:
                span = _span(window)
                if span is not None and begin <= span[0] + (span[1] - span[0]) / 2 <= end:
                    of_period.append(window)
            if of_period:
                in_period += len(of_period)
                merged.append(merge_windows(of_period))
    figures: dict[str, Any] = {
        "regression_concurrent_devices": len(merged),
        "regression_concurrent_windows": in_period,
    }
    if period is not None:
        figures["regression_period"] = [period[0].isoformat(timespec="seconds"),
                                        period[1].isoformat(timespec="seconds")]
    if len(merged) >= min_devices:
        return ControlChoice(CONCURRENT, tuple(merged),
                             {"regression_control": CONCURRENT, **figures})
    return ControlChoice(STAND_IN, tuple(stand_in), {
        "regression_control": STAND_IN,
        "regression_control_why": f"{len(merged)} not-updated devices sent windows of the "
                                  f"period (at least {min_devices} needed)",
        **figures})
