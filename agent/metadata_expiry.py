"""Warn on the device before the offline-signed targets metadata it trusts expires.

Targets (releases, policies, group assignments) are re-signed only by an admin with the
offline keys (`meisitong-hub targets resign`), by default every 14 days. Once they
expire the device refuses the metadata and installs nothing, which is what stops a frozen
hub from hiding a new pause for long; `meisitong-agent status` says so from
EXPIRY_NOTICE before, so nobody is surprised by a fleet that stopped.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from tuf.api.metadata import Metadata
from tuf.api.serialization import DeserializationError

EXPIRY_NOTICE = timedelta(days=3)


def targets_expiry_warning(metadata_dir: Path, now: datetime) -> str:
    """'' unless the trusted targets.json expires within EXPIRY_NOTICE (or has)."""
    try:
        expires = Metadata.from_bytes((metadata_dir / "targets.json").read_bytes())\
            .signed.expires
    except (OSError, DeserializationError):
        return ""  # not refreshed yet: the refresh status says so
    when = expires.isoformat(timespec="seconds")
    if expires <= now:
        return (f"targets metadata expired at {when}: nothing installs until an admin "
                "re-signs it offline (meisitong-hub targets resign)")
    if expires - now <= EXPIRY_NOTICE:
        days = (expires - now).total_seconds() / 86400
        return (f"targets metadata expires at {when} (in {days:.1f} days): installs stop "
                "then unless an admin re-signs it offline (meisitong-hub targets resign)")
    return ""
