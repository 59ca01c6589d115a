"""TUF metadata and small targets from the hub, or from site peers while it is down.

`HubOrPeersFetcher` is the python-tuf fetcher `MetadataClient` is built with. Each URL
goes to the hub first; if the hub cannot be reached (no connection, a 5xx from a proxy
in front of it), the same hub-relative path is asked of site peers over gossip's mutual
TLS (see `relay_files`), those advertising the newest timestamp first, the one that
answered last before them. For `retry_hub_after` seconds the hub is then not tried
again, so a refresh does not wait for a dead hub on every file.

This is safe because TUF trusts no mirror: whatever a peer sends is verified by ngclient
exactly as the hub's bytes would be. What a fetcher cannot see is *that* verification
failing; `refresh_metadata` does: when a refresh fails on bytes a peer served, that
peer is penalised and left out, and the refresh is tried again with the next, until one
succeeds or no peer is left. With no peers at all everything behaves as before: the
hub's own error is raised unchanged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator

import trio
from tuf.api import exceptions as tuf_errors
from tuf.ngclient import FetcherInterface, Urllib3Fetcher

from agent.errors import AgentError, MetadataError
from agent.gossip.node import GossipNode
from agent.hub_contact import RefreshSource
from agent.metadata_client import MetadataClient

log = logging.getLogger(__name__)

PEERS_PER_FILE = 4
"""How many peers are asked for one file before it counts as missing."""


class HubOrPeersFetcher(FetcherInterface):
    def __init__(
        self,
        hub_url: str,
        node: GossipNode,
        hub_fetcher: FetcherInterface | None = None,
        retry_hub_after: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.hub_url = hub_url.rstrip("/")
        self.node = node
        self._hub = hub_fetcher or Urllib3Fetcher()
        self._retry_hub_after = retry_hub_after
        self._clock = clock
        self._hub_down_until = float("-inf")
        self._preferred: str | None = None
        self.excluded: set[str] = set()
        self.last_peer: str | None = None
        """The peer that served the last file (None: the hub did)."""
        self.served_by: list[str] = []
        """The peers that served files since `refresh_metadata` began (for `status`)."""
        self.hub_error: str | None = None
        """Why the hub did not answer its last try; None once it answers again."""

    def _fetch(self, url: str) -> Iterator[bytes]:
        hub_error: Exception | None = None
        if self._clock() >= self._hub_down_until:
            try:
                chunks = self._hub.fetch(url)
                self.last_peer = self.hub_error = None
                return chunks
            except tuf_errors.DownloadHTTPError as exc:
                if exc.status_code < 500:
                    self.hub_error = None  # an answer, if not the file
                    raise
                hub_error = exc
            except tuf_errors.DownloadError as exc:
                hub_error = exc
            self._hub_down_until = self._clock() + self._retry_hub_after
            self.hub_error = _hub_failure(hub_error, self.hub_url)
        path = self._relative(url)
        sources = self._sources()
        if not sources:
            if hub_error is not None:
                raise hub_error
            raise tuf_errors.DownloadError(
                f"the hub at {self.hub_url} was unreachable moments ago and no site peer is "
                f"known to ask for {path}"
            )
        missing = 0
        failures: list[str] = []
        for address in sources[:PEERS_PER_FILE]:
            try:
                data = trio.from_thread.run(self.node.fetch_file, address, path)
            except FileNotFoundError:
                missing += 1
                continue
            except (AgentError, trio.BrokenResourceError, trio.TooSlowError, OSError) as exc:
                failures.append(f"{address}: {exc or type(exc).__name__}")
                continue
            except Exception as exc:  # a bug must not end the refresh, let alone the daemon
                log.exception("fetching %s from site peer %s", path, address)
                failures.append(f"{address}: {type(exc).__name__}")
                continue
            log.info("fetched %s from site peer %s (hub unreachable)", path, address)
            self.last_peer = self._preferred = address
            if address not in self.served_by:
                self.served_by.append(address)
            return iter([data])
        if missing and not failures:
            raise tuf_errors.DownloadHTTPError(f"no site peer holds {path}", 404)
        raise tuf_errors.DownloadError(
            f"hub unreachable and no site peer could serve {path}: {'; '.join(failures)}"
        ) from hub_error

    def _relative(self, url: str) -> str:
        if not url.startswith(self.hub_url + "/"):
            raise tuf_errors.DownloadError(f"{url} is not a URL of the hub {self.hub_url}")
        return url[len(self.hub_url) + 1:]

    def _sources(self) -> list[str]:
        ranked = trio.from_thread.run_sync(self.node.members.metadata_sources)
        usable = [address for address in ranked if address not in self.excluded]
        if self._preferred in usable:
            usable.remove(self._preferred)
            usable.insert(0, self._preferred)
        return usable

    def peers_left(self) -> bool:
        return any(
            address not in self.excluded for address in self.node.members.metadata_sources()
        )


def _hub_failure(exc: Exception, hub_url: str) -> str:
    """What `status` says about a hub that did not answer a fetch."""
    if isinstance(exc, tuf_errors.DownloadHTTPError):
        return f"the hub at {hub_url} answered HTTP {exc.status_code}"
    if isinstance(exc, tuf_errors.SlowRetrievalError):
        # urllib3 reports a refused connection as a timeout, so ngclient calls it slow.
        return f"no answer from the hub at {hub_url} (connection refused or timed out)"
    return f"cannot download from the hub at {hub_url}: {exc or type(exc).__name__}"


async def refresh_metadata(client: MetadataClient, fetcher: HubOrPeersFetcher | None
                           ) -> RefreshSource:
    """`client.refresh()`, going on to the next peer when one served what TUF refuses;
    says who served the refresh that succeeded."""
    if fetcher is None:
        await trio.to_thread.run_sync(client.refresh)
        return RefreshSource()
    fetcher.excluded.clear()
    while True:
        fetcher.last_peer = None
        fetcher.served_by = []
        try:
            await trio.to_thread.run_sync(client.refresh)
            peers = tuple(fetcher.served_by)
            return RefreshSource(peers, fetcher.hub_error if peers else None)
        except MetadataError as exc:
            peer = fetcher.last_peer
            if peer is None:
                raise
            fetcher.excluded.add(peer)
            fetcher.node.members.penalise_at(peer, f"served metadata TUF refused: {exc}")
            if not fetcher.peers_left():
                raise
