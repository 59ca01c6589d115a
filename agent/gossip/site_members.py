"""Who this agent gossips with: the peers of its site, and how far each is trusted now.

How peers are found (decided for issue 6): the `[gossip] seeds` of agent.toml name a
few site peers by address; every agent then advertises its own gossip and libtorrent
addresses in its signed inventory record, and those spread by gossip itself, so one
reachable seed is enough to learn the whole site. Only inventories whose certificate
says our site are taken as members. (BEP 14 multicast finds libtorrent peers on the LAN
without any of this; a multicast announcement for gossip was left out: seeds are needed
anyway where multicast does not cross subnets, and learning by gossip covers the rest.)

A peer that sends a forged record or metadata TUF refuses gets a strike and is left
alone for a while, longer with each strike: it is never contacted, and its connections
are closed right after the handshake. Time comes from an injectable clock.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass

import trio

from agent.wire.gossip import Inventory

log = logging.getLogger(__name__)

BAN_SECONDS = 300.0
MAX_BAN_SECONDS = 24 * 3600.0


@dataclass
class Member:
    address: str
    device_id: str = ""
    p2p: str = ""
    timestamp_version: int = 0
    strikes: int = 0
    banned_until: float = 0.0


class SiteMembers:
    def __init__(
        self,
        own_device_id: str,
        site: str,
        seeds: list[str] | tuple[str, ...] = (),
        clock: Callable[[], float] = trio.current_time,
    ) -> None:
        self.own_device_id = own_device_id
        self.site = site
        self.own_address = ""
        self._clock = clock
        self._members: dict[str, Member] = {}
        self._banned_devices: dict[str, float] = {}
        for seed in seeds:
            self.add(seed)

    def add(self, address: str) -> Member:
        if address not in self._members:
            self._members[address] = Member(address)
        return self._members[address]

    def learn(self, device_id: str, inventory: Inventory) -> None:
        """Take a verified inventory of a device of our site into the member list."""
        if device_id == self.own_device_id or inventory.site != self.site:
            return
        for member in self._members.values():
            if member.device_id == device_id and member.address != inventory.gossip:
                member.device_id = ""  # the device moved; the old address is just an address
        if not inventory.gossip or inventory.gossip == self.own_address:
            return
        member = self.add(inventory.gossip)
        member.device_id = device_id
        member.p2p = inventory.p2p
        member.timestamp_version = inventory.timestamp_version

    def is_banned(self, address: str = "", device_id: str = "") -> bool:
        now = self._clock()
        member = self._members.get(address)
        if member is not None and member.banned_until > now:
            return True
        return bool(device_id) and self._banned_devices.get(device_id, 0.0) > now

    def penalise(self, address: str, device_id: str, reason: str) -> None:
        member = self.add(address) if address else None
        strikes = 1
        if member is not None:
            member.strikes += 1
            strikes = member.strikes
        until = self._clock() + min(BAN_SECONDS * 2 ** (strikes - 1), MAX_BAN_SECONDS)
        if member is not None:
            member.banned_until = until
        if device_id:
            self._banned_devices[device_id] = until
        log.warning("gossip peer %s (%s) penalised (strike %d): %s",
                    address or "?", device_id or "unknown device", strikes, reason)

    def usable(self) -> list[Member]:
        return [
            m for m in self._members.values()
            if m.address != self.own_address and not self.is_banned(m.address, m.device_id)
        ]

    def pick(self, count: int, rng: random.Random) -> list[str]:
        usable = [m.address for m in self.usable()]
        return rng.sample(usable, min(count, len(usable)))

    def metadata_sources(self) -> list[str]:
        """Addresses to ask for TUF metadata, those advertising the newest first."""
        return [m.address for m in sorted(self.usable(), key=lambda m: -m.timestamp_version)]

    def p2p_endpoints(self) -> list[tuple[str, int]]:
        endpoints = []
        for member in self.usable():
            host, _, port = member.p2p.rpartition(":")
            if host and port.isdigit() and host not in ("0.0.0.0", "::"):  # noqa: S104
                endpoints.append((host.strip("[]"), int(port)))
        return endpoints

    def __len__(self) -> int:
        return len(self._members)
