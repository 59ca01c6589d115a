"""Health signals a device measured around an install: the same few counters over a
window before the install and a window after it (once its health checks passed).

They let the hub see a release that passes every health check yet makes things worse
(hub/rollouts/regression.py compares updated devices with not-yet-updated ones). A
signal the device could not measure is None, never 0: no units declared means no
restart count, an unreadable journal means no crash count, and the hub only compares
what both sides measured.
"""

from __future__ import annotations

from pydantic import Field

from agent.wire.validation import StrictModel

MAX_WINDOW_SECONDS = 7 * 86400
MAX_COUNT = 10_000_000


class SignalWindow(StrictModel):
    started_at: str = Field(max_length=40)
    """ISO 8601, UTC; the window ends `seconds` later."""
    seconds: float = Field(gt=0, le=MAX_WINDOW_SECONDS)
    restarts: int | None = Field(default=None, ge=0, le=MAX_COUNT)
    """systemd NRestarts gained by the release's declared units over the window."""
    oom_kills: int | None = Field(default=None, ge=0, le=MAX_COUNT)
    """Kernel OOM kills over the window (/proc/vmstat oom_kill), device-wide."""
    crashes: int | None = Field(default=None, ge=0, le=MAX_COUNT)
    """Core dumps and crashes the journal recorded over the window."""
    cpu_percent: float | None = Field(default=None, ge=0, le=100_000)
    """Mean CPU of the release's processes over the window (100 = one core)."""
    rss_bytes: int | None = Field(default=None, ge=0, le=1 << 50)
    """Resident memory of the release's processes at the window's end."""


COUNT_SIGNALS = ("restarts", "oom_kills", "crashes")
LEVEL_SIGNALS = ("cpu_percent", "rss_bytes")


class HealthSignals(StrictModel):
    before: SignalWindow
    after: SignalWindow
