"""Talking to the hub over HTTP (httpx under trio): trusted root, enrollment, results.

httpx (with what it pulls in, about 8 MiB) is imported by the first request, not with
this module: a daemon with an empty outbox never sends one (agent/on_demand_peers.py
says why an idle agent keeps its footprint small).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent.errors import AgentError, EnrollmentError, WireFormatError
from agent.wire.decoding import decode_json
from agent.wire.enrollment import EnrollRequest, EnrollResponse
from agent.wire.validation import parse_model

if TYPE_CHECKING:  # a name of its own, so mypy finds a body that uses httpx unimported
    import httpx as httpx_types


class DeliveryError(AgentError):
    """The hub could not be reached or failed; the record stays in the outbox."""


class RecordRefusedError(AgentError):
    """The hub refused the record itself (malformed or bad signature); retrying won't help."""


class HubClient:
    def __init__(self, hub_url: str, timeout: float = 30.0) -> None:
        self.hub_url = hub_url.rstrip("/")
        self.timeout = timeout

    def _client(self) -> httpx_types.AsyncClient:
        import httpx

        return httpx.AsyncClient(base_url=self.hub_url, timeout=self.timeout)

    async def fetch_initial_root(self) -> bytes:
        import httpx

        try:
            async with self._client() as client:
                response = await client.get("/metadata/1.root.json")
        except httpx.HTTPError as exc:
            raise EnrollmentError(f"cannot reach hub {self.hub_url}: {exc}") from None
        if response.status_code != 200:
            raise EnrollmentError(
                f"{self.hub_url}/metadata/1.root.json answered HTTP {response.status_code}"
            )
        return response.content

    async def enroll(self, request: EnrollRequest) -> EnrollResponse:
        import httpx

        try:
            async with self._client() as client:
                response = await client.post(
                    "/api/v1/enroll", json=request.model_dump(mode="json")
                )
        except httpx.HTTPError as exc:
            raise EnrollmentError(f"cannot reach hub {self.hub_url}: {exc}") from None
        if response.status_code != 200:
            raise EnrollmentError(
                f"hub {self.hub_url} refused enrollment (HTTP {response.status_code}): "
                f"{_error_text(response)}"
            )
        answer = decode_json(response.content, "enroll response", EnrollmentError)
        return parse_model(EnrollResponse, answer, "enroll response", EnrollmentError)

    async def post_result(self, body: bytes) -> bool:
        """True if the hub stored it now, False if it had it already."""
        import httpx

        try:
            async with self._client() as client:
                response = await client.post(
                    "/api/v1/results", content=body, headers={"content-type": "application/json"}
                )
        except httpx.HTTPError as exc:
            raise DeliveryError(f"cannot reach hub {self.hub_url}: {exc}") from None
        if response.status_code in (200, 201):
            return response.status_code == 201
        if response.status_code in (400, 413):
            raise RecordRefusedError(f"hub refused the record: {_error_text(response)}")
        raise DeliveryError(f"hub answered HTTP {response.status_code}: {_error_text(response)}")


def _error_text(response: httpx_types.Response) -> str:
    try:
        answer = decode_json(response.content, "hub answer")
    except WireFormatError:
        return response.text[:200]
    return str(answer.get("error", ""))[:500] if isinstance(answer, dict) else response.text[:200]
