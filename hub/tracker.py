"""The hub's BitTorrent HTTP tracker: pure announce logic plus a thin Starlette route.

Rules it keeps (BEP 3, BEP 23, BEP 7):
- An announce names a swarm by `info_hash` and a peer by `peer_id`, both raw 20-byte
  strings, percent-encoded in the query. They are parsed from the RAW query string with
  `unquote_to_bytes`: a decoded `str` parameter has already lost bytes that are not UTF-8.
  (libtorrent announces a hybrid torrent under its v1 hash and its truncated v2 hash; to
  the tracker these are simply two swarms.)
- The peer's address is the request's source address, unless the announce carries an `ip`
  parameter that is a valid IP address: agents bound to 127.0.0.x, or behind a NAT, say
  where they listen. Anything else in `ip` is ignored, not an error.
- Answers are always compact: IPv4 peers as 6-byte entries in `peers` (BEP 23), IPv6 peers
  as 18-byte entries in `peers6` (BEP 7), with `interval`, `min interval`, `complete`
  (peers with nothing left) and `incomplete`.
- `event=stopped` removes the peer. A peer that has not announced for 2 x interval is
  forgotten.
- A malformed announce is answered with a bencoded `failure reason` and HTTP 200, as
  trackers do, and logged; it never raises out of the route.

Which peers an asker is told about is one seam, `peer_selector`: by default everyone but
the asker. Shaping the swarm per site (DESIGN §7, hub/site_peers.py) replaces only that
function. For it, an announce may carry two parameters of ours, which libtorrent keeps
when it appends its own to a tracker URL that already has a query:
- `device`: the announcing agent's device id. The route asks `site_of` (the hub's device
  table) for the device's site and records it with the peer. Unauthenticated; see
  hub/site_peers.py for what a liar can and cannot do with it.
- `hub`: a secret the hub's own seeder puts in its tracker URL, so the tracker knows which
  peer is the hub. Compared in constant time; a wrong one is ignored.

State: the swarms live only in memory. That is deliberate, not an omission: every peer
re-announces at least once per interval, so after a hub restart the swarms rebuild
themselves within one interval, and peers already connected keep trading meanwhile.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_to_bytes

import libtorrent as lt
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hub.errors import TrackerRequestError

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 300
DEFAULT_NUMWANT = 50
MAX_NUMWANT = 200
_EVENTS = frozenset({"", "started", "completed", "stopped", "paused"})
_DEVICE_ID = re.compile(r"^[0-9a-z-]{4,64}$")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Announce:
    """One validated announce request."""

    info_hash: bytes
    peer_id: bytes
    ip: IPAddress
    port: int
    uploaded: int
    downloaded: int
    left: int | None
    """None when the client did not say; such a peer counts as incomplete."""
    event: str
    numwant: int
    device: str | None = None
    """The agent's device id, when it says (our `device` parameter)."""
    hub_key: str | None = None
    """Our `hub` parameter: the hub seeder's secret, when it is the hub announcing."""


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


PeerSelector = Callable[[Peer, Sequence[Peer]], Sequence[Peer]]
"""Given the asker (as just recorded) and every live peer of its swarm (the asker
included), the peers to tell it about, best first. The tracker keeps the first `numwant`."""

SiteLookup = Callable[[str], Awaitable[str | None]]
"""device id -> its site, or None when the hub does not know the device."""


def everyone_but_the_asker(asker: Peer, peers: Sequence[Peer]) -> Sequence[Peer]:
    """The default selector: all other peers, shuffled so no peer is always listed last
    (and so never chosen) when a swarm is larger than numwant."""
    others = [p for p in peers if p.peer_id != asker.peer_id]
    random.shuffle(others)
    return others


def parse_query(query: bytes | str | Mapping[str, str]) -> dict[str, bytes]:
    """Split a query into name -> raw value bytes; the first occurrence of a name wins.

    A Mapping is accepted for callers (and tests) whose values are already text; binary
    values can only arrive intact in a raw query string.
    """
    if isinstance(query, Mapping):
        return {k: v.encode("latin-1") for k, v in query.items()}
    raw = query.encode("latin-1") if isinstance(query, str) else query
    params: dict[str, bytes] = {}
    for part in raw.split(b"&"):
        if not part:
            continue
        name, _, value = part.partition(b"=")
        key = unquote_to_bytes(name.replace(b"+", b" ")).decode("utf-8", "replace")
        params.setdefault(key, unquote_to_bytes(value.replace(b"+", b" ")))
    return params


def _required(params: dict[str, bytes], name: str) -> bytes:
    if name not in params:
        raise TrackerRequestError(f"missing parameter '{name}'")
    return params[name]


def _int(params: dict[str, bytes], name: str, default: int = 0) -> int:
    if name not in params:
        return default
    text = params[name].decode("ascii", "replace")
    try:
        value = int(text)
    except ValueError:
        raise TrackerRequestError(f"parameter '{name}' is not an integer: {text!r}") from None
    if value < 0:
        raise TrackerRequestError(f"parameter '{name}' is negative: {value}")
    return value


def parse_announce(query: bytes | str | Mapping[str, str], remote_ip: str) -> Announce:
    """Validate an announce; raises TrackerRequestError naming the bad parameter."""
    params = parse_query(query)
    info_hash = _required(params, "info_hash")
    if len(info_hash) != 20:
        raise TrackerRequestError(f"info_hash is {len(info_hash)} bytes, not 20")
    peer_id = _required(params, "peer_id")
    if len(peer_id) != 20:
        raise TrackerRequestError(f"peer_id is {len(peer_id)} bytes, not 20")
    _required(params, "port")
    port = _int(params, "port")
    if not 1 <= port <= 65535:
        raise TrackerRequestError(f"port {port} is out of range")
    event = params.get("event", b"").decode("ascii", "replace")
    if event not in _EVENTS:
        raise TrackerRequestError(f"unknown event {event!r}")
    ip = _peer_ip(params.get("ip"), remote_ip)
    device = params["device"].decode("ascii", "replace") if "device" in params else None
    if device is not None and not _DEVICE_ID.match(device):
        raise TrackerRequestError(f"parameter 'device' is not a device id: {device[:80]!r}")
    hub_key = params["hub"].decode("ascii", "replace") if "hub" in params else None
    numwant = _int(params, "numwant", DEFAULT_NUMWANT)
    return Announce(
        info_hash=info_hash,
        peer_id=peer_id,
        ip=ip,
        port=port,
        uploaded=_int(params, "uploaded"),
        downloaded=_int(params, "downloaded"),
        left=_int(params, "left") if "left" in params else None,
        event=event,
        numwant=min(numwant, MAX_NUMWANT),
        device=device,
        hub_key=hub_key,
    )


def _peer_ip(claimed: bytes | None, remote_ip: str) -> IPAddress:
    if claimed:
        try:
            return ipaddress.ip_address(claimed.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            log.debug("ignoring announce ip=%r: not an IP address", claimed)
    try:
        return ipaddress.ip_address(remote_ip)
    except ValueError:
        raise TrackerRequestError(f"cannot tell the peer's address ({remote_ip!r})") from None


def failure(reason: str) -> bytes:
    """A bencoded tracker failure answer."""
    answer: dict[bytes, Any] = {b"failure reason": reason.encode()}
    return bytes(lt.bencode(answer))


class Swarms:
    """Peers per info-hash, in memory only (see the module docstring for why)."""

    def __init__(
        self,
        interval: int = DEFAULT_INTERVAL,
        peer_selector: PeerSelector = everyone_but_the_asker,
        clock: Callable[[], float] = time.monotonic,
        hub_key: str | None = None,
    ) -> None:
        self.interval = interval
        self._select = peer_selector
        self._clock = clock
        self._hub_key = hub_key
        self._swarms: dict[bytes, dict[bytes, Peer]] = {}
        self._joined: dict[str | bytes, tuple[float, float]] = {}  # key -> (first, last)
        self._joined_pruned = clock()

    def _first_seen(self, key: str | bytes, now: float) -> float:
        """When `key` was first heard of; forgotten after 2 x interval of silence."""
        if now - self._joined_pruned > self.interval:
            cutoff = now - 2 * self.interval
            self._joined = {k: v for k, v in self._joined.items() if v[1] >= cutoff}
            self._joined_pruned = now
        first = self._joined.get(key, (now, now))[0]
        self._joined[key] = (first, now)
        return first

    def is_hub(self, request: Announce) -> bool:
        return (
            self._hub_key is not None
            and request.hub_key is not None
            and hmac.compare_digest(request.hub_key.encode(), self._hub_key.encode())
        )

    def announce(self, request: Announce, site: str | None = None) -> bytes:
        """Record the announce (the peer of a device of `site`) and return the bencoded
        answer."""
        now = self._clock()
        swarm = self._expire(request.info_hash, now)
        asker = Peer(
            request.peer_id, request.ip, request.port, request.left, now,
            first_seen=self._first_seen(request.device or request.peer_id, now),
            device=request.device,
            site=site,
            is_hub=self.is_hub(request),
        )
        if request.event == "stopped":
            swarm.pop(request.peer_id, None)
        else:
            swarm[request.peer_id] = asker
        if not swarm:
            self._swarms.pop(request.info_hash, None)
        live = list(swarm.values())
        chosen = [] if request.event == "stopped" else self._select(asker, live)
        chosen = list(chosen)[: request.numwant]
        log.debug(
            "announce %s from %s:%d (device %s, site %s%s): told %d peers%s",
            request.event or "-", asker.ip, asker.port, asker.device, asker.site,
            ", the hub" if asker.is_hub else "", len(chosen),
            ", the hub among them" if any(p.is_hub for p in chosen) else "",
        )
        v4 = b"".join(p.ip.packed + p.port.to_bytes(2, "big") for p in chosen if p.ip.version == 4)
        v6 = b"".join(p.ip.packed + p.port.to_bytes(2, "big") for p in chosen if p.ip.version == 6)
        complete = sum(1 for p in live if p.is_seed)
        answer: dict[bytes, Any] = {
            b"interval": self.interval,
            b"min interval": max(1, self.interval // 5),
            b"complete": complete,
            b"incomplete": len(live) - complete,
            b"peers": v4,
            b"peers6": v6,
        }
        return bytes(lt.bencode(answer))

    def peers(self, info_hash: bytes) -> list[Peer]:
        """The live peers of one swarm (for status pages and tests)."""
        return list(self._expire(info_hash, self._clock()).values())

    def _expire(self, info_hash: bytes, now: float) -> dict[bytes, Peer]:
        swarm = self._swarms.setdefault(info_hash, {})
        cutoff = now - 2 * self.interval
        for peer_id in [pid for pid, p in swarm.items() if p.last_seen < cutoff]:
            del swarm[peer_id]
        return swarm


async def handle_announce(
    swarms: Swarms, raw_query: bytes, remote_ip: str, site_of: SiteLookup | None = None
) -> bytes:
    """The whole announce, errors included, as bytes to send back with HTTP 200."""
    try:
        request = parse_announce(raw_query, remote_ip)
    except TrackerRequestError as exc:
        log.warning("malformed announce from %s: %s", remote_ip, exc)
        return failure(str(exc))
    site = None
    if request.device is not None and site_of is not None:
        site = await site_of(request.device)
    return swarms.announce(request, site)


def make_announce_route(swarms: Swarms, site_of: SiteLookup | None = None) -> Route:
    """GET /announce backed by `swarms`; `site_of` tells an announcing device's site."""

    async def announce(request: Request) -> Response:
        remote_ip = request.client.host if request.client else ""
        body = await handle_announce(
            swarms, request.scope.get("query_string", b""), remote_ip, site_of
        )
        return Response(body, media_type="text/plain")

    return Route("/announce", announce, methods=["GET"])
