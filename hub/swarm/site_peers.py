"""Site-aware peer selection: the tracker shapes each swarm so a payload crosses each
site's WAN link about once (DESIGN §7).

The rules, for one swarm:
- An agent of a known site is told the other agents of its own site, shuffled, and no
  one else: a transfer between two sites would cross two WAN links, so it is never
  suggested.
- Each site has `hub_peers_per_site` *gateways* per release: only they are told the hub
  seeder's address, and the hub seeder is told only of them. Every other agent of the
  site never learns the hub's address: the tracker withholds it, the hub connects to no
  one else, and PEX is off on hub and agents (hub/swarm/seeder.py, agent/peer_session.py), so
  peers cannot pass it on. Measured on one site (DESIGN §7): the hub then sends 1.00
  copy, against 1.6-1.9 when every agent talks to it.
- A gateway is stable: once elected (the site's agent heard of longest ago, among those
  live in the swarm) it stays the gateway of that release as long as it keeps
  announcing, in both swarms of a hybrid torrent, whoever else joins or however their
  announces interleave. A second gateway would make the hub send a second copy.
- Failover only when a gateway leaves: when it announces `stopped` or the tracker
  expires it (three missed announces), the next-oldest live agent of its site is elected
  at the next announce of the site or of the hub, and told of the hub at its own next
  announce (within one interval); the hub learns of it at its own next announce or when
  the new gateway connects to it.
- An agent whose site is unknown (no device id in its announce, or a device the hub has
  not accepted) gets the default answer, everyone but itself, hub included; the hub
  seeder is told of such agents too. So a tracker without site knowledge behaves exactly
  like a plain tracker.

Trust: the device id in an announce is not authenticated (a BitTorrent announce carries
no signature). Whoever knows a device id can announce as it: choose which site's peer
list it receives, and become that site's gateway if it is elected. That costs the
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
from hub.swarm.tracker import Peer

DEFAULT_HUB_PEERS_PER_SITE = 1


class SitePeerSelector:
    """A tracker `PeerSelector` implementing the rules of the module docstring."""

    def __init__(self, hub_peers_per_site: int = DEFAULT_HUB_PEERS_PER_SITE) -> None:
        if hub_peers_per_site < 1:
            raise ValueError(f"hub_peers_per_site {hub_peers_per_site}: must be >= 1")
        self.hub_peers_per_site = hub_peers_per_site
        # (release, site) -> the gateways' keys (device id, else peer id), eldest first
        self._gateways: dict[tuple[bytes, str], list[str | bytes]] = {}

    def gateways(self, release: bytes, site: str) -> list[str | bytes]:
        """The keys (device ids) of a site's gateways for a release, as elected now."""
        return list(self._gateways.get((release, site), []))

    def select(self, asker: Peer, peers: Sequence[Peer], release: bytes) -> Sequence[Peer]:
        others = [p for p in peers if p.peer_id != asker.peer_id]
        by_site: dict[str, list[Peer]] = {}
        for peer in peers:
            if peer.site is not None and not peer.is_hub:
                by_site.setdefault(peer.site, []).append(peer)
        if asker.is_hub:
            gateways: set[bytes] = set()
            for site, members in by_site.items():
                gateways |= self._elect(release, site, members)
            chosen = [p for p in others if p.peer_id in gateways or p.site is None]
        elif asker.site is None:
            chosen = others
        else:
            gateways = self._elect(release, asker.site, by_site.get(asker.site, []))
            chosen = [p for p in others if p.site == asker.site and not p.is_hub]
            random.shuffle(chosen)
            if asker.peer_id in gateways:
                chosen = [p for p in others if p.is_hub] + chosen
            return chosen
        random.shuffle(chosen)
        return chosen

    def forget(self, peer: Peer, release: bytes) -> None:
        if peer.site is None or peer.is_hub:
            return
        current = self._gateways.get((release, peer.site))
        if current and peer.key in current:
            current.remove(peer.key)
            if not current:
                del self._gateways[(release, peer.site)]

    def _elect(self, release: bytes, site: str, members: list[Peer]) -> set[bytes]:
        """Peer ids, in this swarm, of the site's gateways; elects the missing ones among
        `members` (the site's live agents in this swarm), longest-present first."""
        current = self._gateways.setdefault((release, site), [])
        if len(current) < self.hub_peers_per_site:
            candidates = sorted(
                (p for p in members if p.key not in current),
                key=lambda p: (p.first_seen, p.peer_id),
            )
            current.extend(p.key for p in candidates[: self.hub_peers_per_site - len(current)])
        if not current:
            del self._gateways[(release, site)]
        return {p.peer_id for p in members if p.key in current}


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
