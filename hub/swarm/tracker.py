"""The hub's BitTorrent tracker state: who is in which swarm, as pure logic over a clock.

Rules it keeps:
- Every peer announces every `interval` seconds: the tracker hands that interval out,
  and the hub's seeder and the agents use it (agent/torrent_network.py lowers
  libtorrent's `min_announce_interval`, which would otherwise stretch 30 s to 300 s).
- A peer is forgotten only once it has missed three announces (`EXPIRY_INTERVALS` x
  interval of silence), or at once when it announces `stopped`. A peer late by one
  announce, or one whose announce was lost, stays in its swarm.
- Bounded: at most `max_swarms` swarms, `max_peers` peers per swarm and `max_per_address`
  peers per address in one swarm; an announce past a bound raises TrackerRefusedError
  (the HTTP route answers it as a `failure reason`). Expired peers and empty swarms are
  swept at least once per interval, so memory follows the live swarms.
- `event=completed` counts a download (scrape's `downloaded`).

Which swarms exist at all is not decided here: hub/swarm/tracker_http.py serves only the swarms
of published releases and names each announce's release, so a hybrid torrent's two swarms
(its v1 hash and its truncated v2 hash) are one release to the peer selector.

Which peers an asker is told about is one seam, `PeerSelector`: by default everyone but
the asker; shaping the swarm per site (DESIGN §7, hub/swarm/site_peers.py) replaces it.

State lives only in memory. That is deliberate, not an omission: every peer re-announces
at least once per interval, so after a hub restart the swarms rebuild themselves within
one interval, and peers already connected keep trading meanwhile.
"""

from __future__ import annotations

import hmac
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from hub.errors import TrackerRefusedError
from hub.swarm.tracker_wire import Announce, IPAddress, SwarmCounts, announce_answer

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 30
EXPIRY_INTERVALS = 3.5
"""A peer silent this many intervals has missed three announces and is forgotten."""
MAX_SWARMS = 1024
MAX_PEERS_PER_SWARM = 10_000
MAX_PEERS_PER_ADDRESS = 8


@dataclass(frozen=True)
class Peer:
    """A peer of one swarm as the tracker last heard of it."""

    peer_id: bytes
    ip: IPAddress
    port: int
    left: int | None
    last_seen: float
    first_seen: float = 0.0
    """When the tracker first heard of this agent (its device, else its peer id) in ANY
    swarm. One clock for all swarms: libtorrent announces a hybrid torrent in two swarms
    (v1 and v2 hashes), and agents' announces interleave differently in each; per-swarm
    ages would elect different gateways in the two swarms of one payload."""
    device: str | None = None
    site: str | None = None
    """The device's site as the hub enrolled it; None when unknown."""
    is_hub: bool = False

    @property
    def is_seed(self) -> bool:
        return self.left == 0

    @property
    def key(self) -> str | bytes:
        """Who this is across swarms: the device id, else the peer id."""
        return self.device or self.peer_id


class PeerSelector(Protocol):
    """Chooses whom an announcing peer is told about."""

    def select(self, asker: Peer, peers: Sequence[Peer], release: bytes) -> Sequence[Peer]:
        """Given the asker (as just recorded) and every live peer of its swarm (the asker
        included) of `release`, the peers to tell it about, best first. The tracker keeps
        the first `numwant`."""
        ...

    def forget(self, peer: Peer, release: bytes) -> None:
        """`peer` left a swarm of `release` (it stopped, or expired)."""
        ...


class EveryoneButTheAsker:
    """The default selector: all other peers, shuffled so no peer is always listed last
    (and so never chosen) when a swarm is larger than numwant."""

    def select(self, asker: Peer, peers: Sequence[Peer], release: bytes) -> Sequence[Peer]:
        others = [p for p in peers if p.peer_id != asker.peer_id]
        random.shuffle(others)
        return others

    def forget(self, peer: Peer, release: bytes) -> None:
        pass


@dataclass
class _Swarm:
    release: bytes
    peers: dict[bytes, Peer] = field(default_factory=dict)
    downloaded: int = 0


class Swarms:
    """Peers per info-hash, in memory only (see the module docstring for why)."""

    def __init__(
        self,
        interval: int = DEFAULT_INTERVAL,
        peer_selector: PeerSelector | None = None,
        clock: Callable[[], float] = time.monotonic,
        hub_key: str | None = None,
        max_swarms: int = MAX_SWARMS,
        max_peers: int = MAX_PEERS_PER_SWARM,
        max_per_address: int = MAX_PEERS_PER_ADDRESS,
    ) -> None:
        self.interval = interval
        self.expiry = EXPIRY_INTERVALS * interval
        self._select = peer_selector or EveryoneButTheAsker()
        self._clock = clock
        self._hub_key = hub_key
        self._max_swarms = max_swarms
        self._max_peers = max_peers
        self._max_per_address = max_per_address
        self._swarms: dict[bytes, _Swarm] = {}
        self._joined: dict[str | bytes, tuple[float, float]] = {}  # key -> (first, last)
        self._swept = clock()

    def is_hub(self, request: Announce) -> bool:
        return (
            self._hub_key is not None
            and request.hub_key is not None
            and hmac.compare_digest(request.hub_key.encode(), self._hub_key.encode())
        )

    def announce(
        self, request: Announce, site: str | None = None, release: bytes | None = None
    ) -> bytes:
        """Record the announce (the peer of a device of `site`, in a swarm of `release`,
        which defaults to the info-hash) and return the bencoded answer. Raises
        TrackerRefusedError past a bound; nothing is recorded then."""
        now = self._clock()
        if now - self._swept >= self.interval:
            self._sweep(now)
        swarm = self._swarm(request.info_hash, release or request.info_hash, now)
        stopped = request.event == "stopped"
        if stopped:
            gone = swarm.peers.pop(request.peer_id, None)
            if gone is not None:
                self._select.forget(gone, swarm.release)
        else:
            self._check_room(swarm, request)
        key = request.device or request.peer_id
        first = self._joined.get(key, (now, now))[0]
        asker = Peer(
            request.peer_id, request.ip, request.port, request.left, now,
            first_seen=first, device=request.device, site=site, is_hub=self.is_hub(request),
        )
        if not stopped:
            self._joined[key] = (first, now)
            swarm.peers[request.peer_id] = asker
            if request.event == "completed":
                swarm.downloaded += 1
        live = list(swarm.peers.values())
        counts = _counts(swarm)
        if not swarm.peers:
            self._swarms.pop(request.info_hash, None)
        chosen = [] if stopped else list(self._select.select(asker, live, swarm.release))
        chosen = chosen[: request.numwant]
        log.debug(
            "announce %s from %s:%d (device %s, site %s%s): told %d peers%s",
            request.event or "-", asker.ip, asker.port, asker.device, asker.site,
            ", the hub" if asker.is_hub else "", len(chosen),
            ", the hub among them" if any(p.is_hub for p in chosen) else "",
        )
        return announce_answer(((p.ip, p.port) for p in chosen), self.interval, counts)

    def peers(self, info_hash: bytes) -> list[Peer]:
        """The live peers of one swarm (for status pages and tests)."""
        swarm = self._swarms.get(info_hash)
        if swarm is None:
            return []
        self._expire(swarm, self._clock())
        return list(swarm.peers.values())

    def counts(self, info_hash: bytes) -> SwarmCounts | None:
        """Scrape's view of one swarm; None when the tracker holds no such swarm."""
        swarm = self._swarms.get(info_hash)
        if swarm is None:
            return None
        self._expire(swarm, self._clock())
        return _counts(swarm)

    def info_hashes(self) -> list[bytes]:
        return list(self._swarms)

    def _swarm(self, info_hash: bytes, release: bytes, now: float) -> _Swarm:
        swarm = self._swarms.get(info_hash)
        if swarm is None:
            if len(self._swarms) >= self._max_swarms:
                self._sweep(now)
            if len(self._swarms) >= self._max_swarms:
                raise TrackerRefusedError(
                    f"tracker full: {self._max_swarms} swarms already tracked"
                )
            swarm = self._swarms[info_hash] = _Swarm(release)
        self._expire(swarm, now)
        return swarm

    def _check_room(self, swarm: _Swarm, request: Announce) -> None:
        if request.peer_id in swarm.peers:
            return
        if len(swarm.peers) >= self._max_peers:
            raise TrackerRefusedError(f"swarm full: {self._max_peers} peers")
        same_address = sum(1 for p in swarm.peers.values() if p.ip == request.ip)
        if same_address >= self._max_per_address:
            raise TrackerRefusedError(
                f"{self._max_per_address} peers from {request.ip} already in this swarm"
            )

    def _expire(self, swarm: _Swarm, now: float) -> None:
        cutoff = now - self.expiry
        for peer_id in [pid for pid, p in swarm.peers.items() if p.last_seen < cutoff]:
            self._select.forget(swarm.peers.pop(peer_id), swarm.release)

    def _sweep(self, now: float) -> None:
        """Expire every swarm, drop the empty ones, forget silent peers' first-seen."""
        for info_hash, swarm in list(self._swarms.items()):
            self._expire(swarm, now)
            if not swarm.peers:
                del self._swarms[info_hash]
        cutoff = now - self.expiry
        self._joined = {k: v for k, v in self._joined.items() if v[1] >= cutoff}
        self._swept = now


def _counts(swarm: _Swarm) -> SwarmCounts:
    complete = sum(1 for p in swarm.peers.values() if p.is_seed)
    return SwarmCounts(complete, len(swarm.peers) - complete, swarm.downloaded)
