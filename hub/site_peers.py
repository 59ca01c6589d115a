"""Site-aware peer selection: the tracker shapes each swarm so a payload crosses each
site's WAN link about once (DESIGN §7).

The rules, for one swarm:
- An agent of a known site is told the other agents of its own site, shuffled, and no
  one else: a transfer between two sites would cross two WAN links, so it is never
  suggested.
- Of each site, the `hub_peers_per_site` agents announced longest ago that are still live
  are the site's *gateways*. Only they are told the hub seeder's address, and the hub
  seeder is told only of them. Every other agent of the site never learns the hub's
  address: the tracker withholds it, the hub connects to no one else, and PEX is off on
  hub and agents (hub/seeder.py, agent/peer_session.py), so peers cannot pass it on.
  Measured on one site (DESIGN §7): the hub then sends 1.00 copy, against 1.6-1.9 when
  every agent talks to it.
- Failover: a gateway that stops or falls silent (2 x interval, the tracker's expiry)
  is replaced by the next-oldest live agent of its site, which is told of the hub at its
  next announce (within one interval); the hub learns of it at its own next announce or
  when the new gateway connects to it.
- An agent whose site is unknown (no device id in its announce, or a device the hub has
  not accepted) gets the default answer, everyone but itself, hub included; the hub
  seeder is told of such agents too. So a tracker without site knowledge behaves exactly
  like a plain tracker.

Trust: the device id in an announce is not authenticated (a BitTorrent announce carries
no signature). Whoever knows a device id can announce as it: choose which site's peer
list it receives, and become that site's gateway if it is the oldest. That costs the
site locality, never integrity: every piece is hash-checked and the whole file is checked
against the TUF target, and an agent whose download makes no progress for
`web_seed_after` seconds falls back to the hub's web seed. Device ids are not secrets, but
neither are they advertised: peers learn addresses, not device ids.

`DeviceSites` is where the tracker learns sites: the `devices` table (site as enrolled,
from the agent's agent.toml), read through a worker thread and cached.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import trio

from hub.database import HubDatabase
from hub.tracker import Peer

DEFAULT_HUB_PEERS_PER_SITE = 1


def site_gateways(peers: Sequence[Peer], per_site: int) -> set[bytes]:
    """Peer ids of each known site's `per_site` longest-present live agents."""
    by_site: dict[str, list[Peer]] = {}
    for peer in peers:
        if peer.site is not None and not peer.is_hub:
            by_site.setdefault(peer.site, []).append(peer)
    chosen: set[bytes] = set()
    for members in by_site.values():
        members.sort(key=lambda p: (p.first_seen, p.peer_id))
        chosen.update(p.peer_id for p in members[:per_site])
    return chosen


class SitePeerSelector:
    """A tracker `PeerSelector` implementing the rules of the module docstring."""

    def __init__(self, hub_peers_per_site: int = DEFAULT_HUB_PEERS_PER_SITE) -> None:
        if hub_peers_per_site < 1:
            raise ValueError(f"hub_peers_per_site {hub_peers_per_site}: must be >= 1")
        self.hub_peers_per_site = hub_peers_per_site

    def __call__(self, asker: Peer, peers: Sequence[Peer]) -> Sequence[Peer]:
        others = [p for p in peers if p.peer_id != asker.peer_id]
        gateways = site_gateways(peers, self.hub_peers_per_site)
        if asker.is_hub:
            chosen = [p for p in others if p.peer_id in gateways or p.site is None]
        elif asker.site is None:
            chosen = others
        else:
            chosen = [p for p in others if p.site == asker.site and not p.is_hub]
            random.shuffle(chosen)
            if asker.peer_id in gateways:
                chosen = [p for p in others if p.is_hub] + chosen
            return chosen
        random.shuffle(chosen)
        return chosen


class DeviceSites:
    """device id -> site of accepted devices, read from the hub database and cached for
    `ttl` seconds (a device moved to another site is seen after at most that long).
    Unknown and not-accepted devices map to None, cached just as long, so an announce
    naming a made-up device costs one indexed read per ttl."""

    def __init__(
        self, database: Path, ttl: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._database = database
        self._ttl = ttl
        self._clock = clock
        self._cache: dict[str, tuple[str | None, float]] = {}

    async def site_of(self, device_id: str) -> str | None:
        cached = self._cache.get(device_id)
        now = self._clock()
        if cached is not None and now - cached[1] < self._ttl:
            return cached[0]
        site = await trio.to_thread.run_sync(self._read, device_id)
        self._cache[device_id] = (site, now)
        return site

    def _read(self, device_id: str) -> str | None:
        database = HubDatabase(self._database)
        try:
            rows = database.query(
                "SELECT site FROM devices WHERE device_id = ? AND status = 'accepted'",
                (device_id,),
            )
        finally:
            database.close()
        return str(rows[0]["site"]) if rows else None
