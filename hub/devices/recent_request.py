"""The check every signed device request shares (leases, heartbeats): it comes from an
accepted device, its own key signed it, and it was issued close to the hub's time, so a
captured request cannot be replayed later."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from agent.errors import SignatureError
from hub.database import DeviceRow, HubDatabase
from hub.errors import UnknownDeviceError

MAX_SKEW = timedelta(minutes=5)


def verify_recent_request(database: HubDatabase, device_id: str, issued_at: str,
                          verify: Callable[[bytes], None], what: str, now: datetime
                          ) -> tuple[DeviceRow, datetime]:
    """(the device, when it issued the request); raises UnknownDeviceError for a device
    that is not accepted, SignatureError for a bad signature or a time out of bounds.
    `verify` checks the signature against the device's public key."""
    device = database.device(device_id)
    if device is None or device.status != "accepted":
        raise UnknownDeviceError(f"no accepted device {device_id!r}")
    verify(device.public_key)
    try:
        issued = datetime.fromisoformat(issued_at)
    except ValueError:
        raise SignatureError(f"{what}: issued_at {issued_at!r} is not a time") from None
    if issued.tzinfo is None or abs(now - issued) > MAX_SKEW:
        raise SignatureError(
            f"{what} from {device_id} issued at {issued_at}: not within {MAX_SKEW} of the "
            "hub's time (replayed, or a clock is wrong)")
    return device, issued
