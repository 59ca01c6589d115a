"""What the hub's tracker reads and writes on the wire: announce and scrape queries in,
bencoded answers out (BEP 3, BEP 23, BEP 7, BEP 48). No state here; hub/swarm/tracker.py keeps
the swarms and hub/swarm/tracker_http.py serves both.

Rules:
- `info_hash` and `peer_id` are raw 20-byte strings, percent-encoded in the query. They
  are parsed from the RAW query string with `unquote_to_bytes`: a decoded `str` parameter
  has already lost bytes that are not UTF-8. (libtorrent announces a hybrid torrent under
  its v1 hash and its truncated v2 hash; to the tracker these are two swarms.)
- The peer's address is the connection's source address, always. An `ip` parameter is
  ignored: honouring it would let anyone put any address (a victim's, or a site peer's)
  into a swarm. Agents and the hub's seeder bind their outgoing connections to their
  listen address, so the source address is where they listen.
- Answers are always compact: IPv4 peers as 6-byte entries in `peers` (BEP 23), IPv6
  peers as 18-byte entries in `peers6` (BEP 7).
- A malformed request is answered with a bencoded `failure reason` (HTTP 200, as trackers
  do); parsing raises TrackerRequestError naming the bad parameter.

Two parameters are ours, which libtorrent keeps when it appends its own to a tracker URL
that already has a query: `device` (the announcing agent's device id) and `hub` (the
secret the hub's own seeder puts in its tracker URL). See hub/swarm/site_peers.py.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_to_bytes

import libtorrent as lt

from hub.errors import TrackerRequestError

DEFAULT_NUMWANT = 50
MAX_NUMWANT = 200
MAX_SCRAPE_HASHES = 100
_EVENTS = frozenset({"", "started", "completed", "stopped", "paused"})
_DEVICE_ID = re.compile(r"^[0-9a-z-]{4,64}$")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Announce:
    """One validated announce request."""

    info_hash: bytes
    peer_id: bytes
    ip: IPAddress
    """The connection's source address (never a parameter)."""
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
class SwarmCounts:
    """One swarm as scrape reports it (BEP 48)."""

    complete: int
    incomplete: int
    downloaded: int


def query_pairs(query: bytes | str | Mapping[str, str]) -> list[tuple[str, bytes]]:
    """Split a query into (name, raw value bytes) pairs, in order, repeats kept.

    A Mapping is accepted for callers (and tests) whose values are already text; binary
    values can only arrive intact in a raw query string.
    """
    if isinstance(query, Mapping):
        return [(k, v.encode("latin-1")) for k, v in query.items()]
    raw = query.encode("latin-1") if isinstance(query, str) else query
    pairs = []
    for part in raw.split(b"&"):
        if not part:
            continue
        name, _, value = part.partition(b"=")
        key = unquote_to_bytes(name.replace(b"+", b" ")).decode("utf-8", "replace")
        pairs.append((key, unquote_to_bytes(value.replace(b"+", b" "))))
    return pairs


def parse_query(query: bytes | str | Mapping[str, str]) -> dict[str, bytes]:
    """name -> raw value bytes; the first occurrence of a name wins."""
    params: dict[str, bytes] = {}
    for name, value in query_pairs(query):
        params.setdefault(name, value)
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
        raise TrackerRequestError(f"parameter '{name}' is not an integer: {text[:40]!r}") from None
    if value < 0:
        raise TrackerRequestError(f"parameter '{name}' is negative: {value}")
    return value


def source_address(remote_ip: str) -> IPAddress:
    """The connection's source address; raises TrackerRequestError if there is none."""
    try:
        address = ipaddress.ip_address(remote_ip)
    except ValueError:
        raise TrackerRequestError(f"cannot tell the peer's address ({remote_ip!r})") from None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def parse_announce(query: bytes | str | Mapping[str, str], remote_ip: str) -> Announce:
    """Validate an announce that arrived from `remote_ip`; raises TrackerRequestError
    naming the bad parameter."""
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
        raise TrackerRequestError(f"unknown event {event[:40]!r}")
    device = params["device"].decode("ascii", "replace") if "device" in params else None
    if device is not None and not _DEVICE_ID.match(device):
        raise TrackerRequestError(f"parameter 'device' is not a device id: {device[:80]!r}")
    hub_key = params["hub"].decode("ascii", "replace") if "hub" in params else None
    numwant = _int(params, "numwant", DEFAULT_NUMWANT)
    return Announce(
        info_hash=info_hash,
        peer_id=peer_id,
        ip=source_address(remote_ip),
        port=port,
        uploaded=_int(params, "uploaded"),
        downloaded=_int(params, "downloaded"),
        left=_int(params, "left") if "left" in params else None,
        event=event,
        numwant=min(numwant, MAX_NUMWANT),
        device=device,
        hub_key=hub_key,
    )


def parse_scrape(query: bytes | str | Mapping[str, str]) -> list[bytes]:
    """The info-hashes a scrape asks about (BEP 48), in order, without repeats; an empty
    list asks about every swarm. Raises TrackerRequestError for a bad one or too many."""
    hashes: list[bytes] = []
    for name, value in query_pairs(query):
        if name != "info_hash":
            continue
        if len(value) != 20:
            raise TrackerRequestError(f"info_hash is {len(value)} bytes, not 20")
        if value not in hashes:
            hashes.append(value)
        if len(hashes) > MAX_SCRAPE_HASHES:
            raise TrackerRequestError(f"more than {MAX_SCRAPE_HASHES} info_hash parameters")
    return hashes


def failure(reason: str) -> bytes:
    """A bencoded tracker failure answer."""
    answer: dict[bytes, Any] = {b"failure reason": reason.encode()}
    return bytes(lt.bencode(answer))


def announce_answer(
    peers: Iterable[tuple[IPAddress, int]], interval: int, counts: SwarmCounts
) -> bytes:
    """The bencoded answer to an announce: compact peers, the interval the client must
    announce at (`min interval` a fifth of it, the floor for manual re-announces)."""
    chosen = list(peers)
    v4 = b"".join(ip.packed + port.to_bytes(2, "big") for ip, port in chosen if ip.version == 4)
    v6 = b"".join(ip.packed + port.to_bytes(2, "big") for ip, port in chosen if ip.version == 6)
    answer: dict[bytes, Any] = {
        b"interval": interval,
        b"min interval": max(1, interval // 5),
        b"complete": counts.complete,
        b"incomplete": counts.incomplete,
        b"peers": v4,
        b"peers6": v6,
    }
    return bytes(lt.bencode(answer))


def scrape_answer(files: Mapping[bytes, SwarmCounts], interval: int) -> bytes:
    """The bencoded answer to a scrape (BEP 48), with `min_request_interval` = interval."""
    answer: dict[bytes, Any] = {
        b"files": {
            info_hash: {
                b"complete": c.complete,
                b"incomplete": c.incomplete,
                b"downloaded": c.downloaded,
            }
            for info_hash, c in files.items()
        },
        b"flags": {b"min_request_interval": interval},
    }
    return bytes(lt.bencode(answer))
