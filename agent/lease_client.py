"""Asking the hub for a disruption-budget lease (httpx under trio).

A lease the hub cannot be asked for is a lease not held: `LeaseUnavailableError` tells
the gate to wait, never to go ahead. The same `LeaseService` protocol is implemented
in-process over the hub's lease store for simulations (see hub/forecast tests).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal, Protocol

from agent.device_identity import DeviceIdentity
from agent.errors import LeaseUnavailableError, WireFormatError
from agent.wire.decoding import decode_json
from agent.wire.lease import LeaseAnswer, LeaseRequest, SignedLeaseRequest
from agent.wire.validation import parse_model


class LeaseService(Protocol):
    async def acquire(self, group: str, scope: str, release: str, ttl_seconds: int
                      ) -> LeaseAnswer: ...

    async def release(self, group: str, scope: str, release: str) -> None: ...


class LeaseClient:
    """LeaseService over the hub's HTTP API, every request signed by the device key."""

    def __init__(self, hub_url: str, identity: DeviceIdentity, timeout: float = 30.0) -> None:
        self.hub_url = hub_url.rstrip("/")
        self.identity = identity
        self.timeout = timeout

    async def acquire(self, group: str, scope: str, release: str, ttl_seconds: int
                      ) -> LeaseAnswer:
        return await self._send("acquire", group, scope, release, ttl_seconds)

    async def release(self, group: str, scope: str, release: str) -> None:
        await self._send("release", group, scope, release, 1)

    async def _send(self, action: Literal["acquire", "release"], group: str, scope: str,
                    release: str, ttl_seconds: int) -> LeaseAnswer:
        request = LeaseRequest(
            action=action, device_id=self.identity.device_id, group=group, scope=scope,
            release=release, ttl_seconds=ttl_seconds,
            issued_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        body = SignedLeaseRequest.sign(request, self.identity.private_key).to_bytes()
        import httpx  # only once a lease is needed: an idle agent asks for none

        try:
            async with httpx.AsyncClient(base_url=self.hub_url, timeout=self.timeout) as client:
                response = await client.post(
                    "/api/v1/leases", content=body, headers={"content-type": "application/json"}
                )
        except httpx.HTTPError as exc:
            raise LeaseUnavailableError(
                f"cannot reach the hub at {self.hub_url} for a lease: {exc}"
            ) from None
        if response.status_code != 200:
            raise LeaseUnavailableError(
                f"hub answered HTTP {response.status_code} to a lease {action}: "
                f"{response.text[:200]}"
            )
        try:
            return parse_model(LeaseAnswer, decode_json(response.content, "lease answer"),
                               "lease answer")
        except (ValueError, WireFormatError) as exc:
            raise LeaseUnavailableError(f"hub sent a malformed lease answer: {exc}") from None
