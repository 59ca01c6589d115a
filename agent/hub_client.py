"""Talking to the hub over HTTP: trusted root and enrollment (httpx under trio), results.

Results go out with urllib3 in a worker thread, as heartbeats do (agent/heartbeat.py):
the TUF refresh has loaded urllib3 anyway, while httpx would add about 8 MiB to a
daemon for the rest of its life after its first result (README "An idle agent's
footprint"). httpx is imported by the enrollment requests only, which the short-lived
`meisitong-agent enroll` makes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio
import urllib3

from agent.errors import DeliveryError, EnrollmentError, RecordRefusedError, WireFormatError
from agent.wire.decoding import decode_json
from agent.wire.enrollment import EnrollRequest, EnrollResponse
from agent.wire.validation import parse_model

if TYPE_CHECKING:  # a name of its own, so mypy finds a body that uses httpx unimported
    import httpx as httpx_types


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
                f"{_error_text(response.content)}"
            )
        answer = decode_json(response.content, "enroll response", EnrollmentError)
        return parse_model(EnrollResponse, answer, "enroll response", EnrollmentError)

    async def post_result(self, body: bytes) -> bool:
        """True if the hub stored it now, False if it had it already."""
        try:
            status, content = await trio.to_thread.run_sync(
                self._post, "/api/v1/results", body, abandon_on_cancel=True)
        except urllib3.exceptions.HTTPError as exc:
            raise DeliveryError(
                f"cannot reach hub {self.hub_url}: {exc or type(exc).__name__}") from None
        if status in (200, 201):
            return status == 201
        if refused_for_good(status):
            raise RecordRefusedError(
                f"hub refused the record (HTTP {status}): {_error_text(content)}")
        raise DeliveryError(f"hub answered HTTP {status}: {_error_text(content)}")

    def _post(self, path: str, body: bytes) -> tuple[int, bytes]:
        """Blocking, in a worker thread: at most 4 KiB of the answer (an error text; the
        hub's answers to results are tiny)."""
        return post_json(f"{self.hub_url}{path}", body, self.timeout, 4096)


def refused_for_good(status: int) -> bool:
    """A 4xx is the hub judging the request itself (hub/api/error_statuses.py), except
    408 and 429, which say "not now". A 5xx is the hub's own fault: retry later."""
    return 400 <= status < 500 and status not in (408, 429)


def _error_text(content: bytes) -> str:
    text = content.decode("utf-8", "replace")
    try:
        answer = decode_json(content, "hub answer")
    except WireFormatError:
        return text[:200]
    return str(answer.get("error", ""))[:500] if isinstance(answer, dict) else text[:200]


def post_json(url: str, body: bytes, timeout: float, limit: int) -> tuple[int, bytes]:
    """Blocking (run it in a worker thread): POST a JSON body with urllib3, no retries
    (the callers have their own), and return the status and at most `limit` bytes of the
    answer. urllib3 rather than httpx: the TUF refresh loads it anyway, so an idle agent
    posting results and heartbeats loads nothing more."""
    pool = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(total=timeout))
    try:
        response = pool.request("POST", url, body=body,
                                headers={"content-type": "application/json"},
                                preload_content=False)
        try:
            return response.status, response.read(limit)
        finally:
            response.release_conn()
    finally:
        pool.clear()
