"""When the offline-signed targets metadata expires, and whether to warn about it.

Why it matters: targets carry the releases, policies and group assignments. A frozen
hub (one that stops publishing what the admin signs, but keeps timestamps fresh with its
online keys) can go on serving the old targets until they expire, hiding a new pause.
Devices notice at expiry: they stop trusting the metadata and install nothing. So the
lifetime is the admin's choice (offline.toml, `init --targets-expiry-days`, default 14
days), and the admin renews it offline with `meisitong-hub targets resign`; `status`
and `targets status` warn from TARGETS_EXPIRY_NOTICE before the date.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from hub.errors import HubError
from hub.hub_dir import HubDir
from hub.repository.metadata_signing import load_state
from hub.repository.offline_record import OfflineRecord
from hub.repository.tuf_repository import TARGETS_EXPIRY_NOTICE, utc_now


@dataclass(frozen=True)
class TargetsExpiry:
    version: int
    expires: datetime
    now: datetime
    lifetime_days: int | None
    """The admin's choice from offline.toml; None when the offline keys are elsewhere."""

    @property
    def days_left(self) -> float:
        return (self.expires - self.now).total_seconds() / 86400

    @property
    def warning(self) -> str:
        """Non-empty from TARGETS_EXPIRY_NOTICE before expiry on."""
        when = self.expires.isoformat(timespec="seconds")
        if self.expires <= self.now:
            return (f"targets metadata v{self.version} EXPIRED at {when}: devices install "
                    "nothing until an admin runs `meisitong-hub targets resign` offline")
        if self.expires - self.now <= TARGETS_EXPIRY_NOTICE:
            return (f"targets metadata v{self.version} expires at {when} (in "
                    f"{self.days_left:.1f} days): run `meisitong-hub targets resign` with "
                    "the offline keys before then, or devices stop installing")
        return ""

    def as_dict(self) -> dict[str, Any]:
        return {"version": self.version, "expires": self.expires.isoformat(timespec="seconds"),
                "days_left": round(self.days_left, 2), "lifetime_days": self.lifetime_days,
                "warning": self.warning}


def targets_expiry(hub_dir: HubDir, offline_keys_dir: Path | None = None,
                   now: Callable[[], datetime] = utc_now) -> TargetsExpiry:
    targets = load_state(hub_dir.metadata).targets.signed
    lifetime: int | None = None
    # Without the record: the offline keys are off this server, as they should be.
    with contextlib.suppress(HubError):
        lifetime = OfflineRecord.load(offline_keys_dir or hub_dir.offline_keys)\
            .targets_expiry_days
    return TargetsExpiry(targets.version, targets.expires, now(), lifetime)
