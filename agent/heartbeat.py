"""The daemon's heartbeat task: tells the hub, signed by the device key, that this
device is alive though it has nothing to report (agent/wire/heartbeat.py says why it is
signed). One small POST per `[hub] heartbeat_interval` (15 min by default), the first at
start, so an idle device costs the hub one verify and, batched, a row update.

A heartbeat the hub does not get is no error: it is retried at the next interval, and
`status` says the hub is unreachable meanwhile. It goes out with urllib3 (which the TUF
refresh has loaded anyway) in a worker thread, not httpx: an idle agent loads no httpx.
Each heartbeat repeats the audit head the device's verified timestamp carries
(agent/wire/audit_head.py), as a witness the hub keeps for auditors.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from datetime import UTC, datetime

import trio
import urllib3

from agent.device_identity import DeviceIdentity
from agent.hub_client import post_json
from agent.hub_contact import HubContact
from agent.wire.audit_head import AuditHead
from agent.wire.heartbeat import Heartbeat, SignedHeartbeat

log = logging.getLogger(__name__)


class HeartbeatSender:
    def __init__(self, hub_url: str, identity: DeviceIdentity, contact: HubContact,
                 interval: float, timeout: float = 30.0,
                 audit_head: Callable[[], AuditHead | None] = lambda: None) -> None:
        self.hub_url = hub_url.rstrip("/")
        self.identity = identity
        self.contact = contact
        self.interval = interval
        self.timeout = timeout
        self.audit_head = audit_head

    async def send(self) -> bool:
        """One heartbeat; True if the hub took it."""
        heartbeat = Heartbeat(device_id=self.identity.device_id,
                              issued_at=datetime.now(UTC).isoformat(timespec="seconds"),
                              audit_head=await trio.to_thread.run_sync(self.audit_head))
        body = SignedHeartbeat.sign(heartbeat, self.identity.private_key).to_bytes()
        try:
            status, text = await trio.to_thread.run_sync(self._post, body,
                                                         abandon_on_cancel=True)
        except urllib3.exceptions.HTTPError as exc:
            self.contact.unreachable(f"heartbeat: cannot reach the hub at {self.hub_url}: "
                                     f"{exc or type(exc).__name__}")
            return False
        if status >= 500:
            self.contact.unreachable(f"heartbeat: the hub answered HTTP {status}")
            return False
        self.contact.answered()
        if status != 200:
            log.warning("hub refused this device's heartbeat (HTTP %d): %s", status, text)
            return False
        return True

    def _post(self, body: bytes) -> tuple[int, str]:
        status, answer = post_json(f"{self.hub_url}/api/v1/heartbeat", body, self.timeout, 300)
        return status, answer.decode("utf-8", "replace")

    async def run(self) -> None:
        while True:
            try:
                await self.send()
            except Exception:  # noqa: BLE001 - no hub answer may end the daemon
                log.exception("heartbeat failed unexpectedly; the next one comes as planned")
            # Jittered, so a fleet restarted together does not beat in step.
            await trio.sleep(self.interval * random.uniform(0.9, 1.1))  # noqa: S311
