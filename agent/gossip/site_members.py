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

Strikes and bans belong to the device seen in TLS, never to an address: an inventory
only *claims* an address, and a rogue could claim a victim's address and then misbehave
to have that address banned. An address is bound to a device only when that device
answered on it (`bind`, after our handshake with it); a banned device's bound address is
left alone, and an address some other device claimed stays usable.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import trio

from agent.wire.gossip import Inventory

log = logging.getLogger(__name__)

BAN_SECONDS = 300.0
MAX_BAN_SECONDS = 24 * 3600.0


@dataclass(frozen=True)
class Claim:
    """What a device's signed inventory says about the address it claims."""

    p2p: str = ""
    timestamp_version: int = 0


@dataclass
class Member:
    address: str
    device_id: str = ""
    """The device that answered on this address in TLS ('' until we dialled it)."""
    claims: dict[str, Claim] = field(default_factory=dict)
    """device id -> its inventory's claim on this address."""

    def _believed(self) -> list[Claim]:
        if self.device_id:
            claim = self.claims.get(self.device_id)
            return [claim] if claim else []
        return list(self.claims.values())

    @property
    def timestamp_version(self) -> int:
        return max((claim.timestamp_version for claim in self._believed()), default=0)

    @property
    def p2p(self) -> list[str]:
        return [claim.p2p for claim in self._believed() if claim.p2p]


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
        self._strikes: dict[str, int] = {}
        self._banned_devices: dict[str, float] = {}
        for seed in seeds:
            self.add(seed)

    def add(self, address: str) -> Member:
        if address not in self._members:
            self._members[address] = Member(address)
        return self._members[address]

    def learn(self, device_id: str, inventory: Inventory) -> None:
        """Take a verified inventory of a device of our site into the member list: its
        claim on an address, believed for that address unless another device answers
        there."""
        if device_id == self.own_device_id or inventory.site != self.site:
            return
        for member in self._members.values():
            if member.address != inventory.gossip:
                member.claims.pop(device_id, None)  # the device moved (or never was there)
        if not inventory.gossip or inventory.gossip == self.own_address:
            return
        self.add(inventory.gossip).claims[device_id] = Claim(
            inventory.p2p, inventory.timestamp_version
        )

    def bind(self, address: str, device_id: str) -> None:
        """`device_id` answered on `address` (its certificate, in our TLS handshake)."""
        member = self._members.get(address)
        if member is not None:
            member.device_id = device_id

    def device_at(self, address: str) -> str:
        member = self._members.get(address)
        return member.device_id if member else ""

    def is_banned(self, address: str = "", device_id: str = "") -> bool:
        """True if `device_id`, or the device bound to `address`, is penalised now."""
        now = self._clock()
        for device in (device_id, self.device_at(address)):
            if device and self._banned_devices.get(device, 0.0) > now:
                return True
        return False

    def penalise(self, device_id: str, reason: str) -> None:
        """A strike for the device seen in TLS; its ban doubles with each strike."""
        if not device_id:
            log.warning("gossip: not penalising an unidentified peer: %s", reason)
            return
        strikes = self._strikes[device_id] = self._strikes.get(device_id, 0) + 1
        until = self._clock() + min(BAN_SECONDS * 2 ** (strikes - 1), MAX_BAN_SECONDS)
        self._banned_devices[device_id] = until
        log.warning("gossip peer %s penalised (strike %d): %s", device_id, strikes, reason)

    def penalise_at(self, address: str, reason: str) -> None:
        """A strike for the device that answered on `address` when we last dialled it."""
        device = self.device_at(address)
        if device:
            self.penalise(device, reason)
        else:
            log.warning("gossip: %s misbehaved but no device is bound to it: %s",
                        address, reason)

    def usable(self) -> list[Member]:
        return [
            m for m in self._members.values()
            if m.address != self.own_address and not self.is_banned(m.address)
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
            for p2p in member.p2p:
                host, _, port = p2p.rpartition(":")
                if host and port.isdigit() and host not in ("0.0.0.0", "::"):  # noqa: S104
                    endpoints.append((host.strip("[]"), int(port)))
        return endpoints

    def __len__(self) -> int:
        return len(self._members)
