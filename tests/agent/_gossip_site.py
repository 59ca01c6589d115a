"""A simulated site for gossip tests and the gossip benchmark: N real gossip nodes on
loopback, each with its own Ed25519 device key, a certificate from a real device CA (the
hub's code), its own SQLite store, and real mutual TLS. Only the daemon around each node
is left out; rounds are driven by the caller, so a round is "every node dials one
random member, all at once".
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import trio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.gossip.node import GossipNode, NodeIdentity
from agent.gossip.site_members import SiteMembers
from agent.gossip.store import GossipStore
from agent.gossip.tls import DeviceCertificates, SiteCredentials
from agent.wire.gossip import INVENTORY_KEY, Inventory
from agent.wire.result import Outcome, ResultRecord, SignedResult
from hub.devices.certificate_authority import DeviceCertificateAuthority


def device_files(
    directory: Path, authority: DeviceCertificateAuthority, site: str
) -> tuple[Ed25519PrivateKey, SiteCredentials]:
    """A device key and its certificate issued by `authority`, as files, like an agent's
    state directory holds them after enrollment."""
    directory.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    (directory / "device.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    (directory / "device.key").chmod(0o600)
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    (directory / "device.crt").write_text(authority.issue(raw, site))
    (directory / "hub-ca.crt").write_text(authority.certificate_pem)
    return key, SiteCredentials(
        directory / "device.crt", directory / "device.key", directory / "hub-ca.crt"
    )


def make_node(directory: Path, authority: DeviceCertificateAuthority, site: str = "branch",
              seed: int = 0, files=None) -> GossipNode:
    key, credentials = device_files(directory, authority, site)
    device, ca, der = credentials.load()
    return GossipNode(
        NodeIdentity(device, key, der),
        DeviceCertificates(ca),
        credentials.server_context(),
        credentials.client_context(),
        GossipStore(directory / "gossip.db"),
        SiteMembers(device.device_id, site),
        files,
        rng=random.Random(seed),
    )


def signed_result(node: GossipNode, record_id: str, outcome: Outcome = Outcome.INSTALLED,
                  device_id: str | None = None) -> SignedResult:
    record = ResultRecord(
        record_id=record_id, device_id=device_id or node.device_id,
        release="releases/app/1.0.0/app.tar", name="app", version="1.0.0", outcome=outcome,
        started_at="2026-11-25T00:00:00+00:00", finished_at="2026-11-25T00:01:00+00:00",
    )
    return SignedResult.sign(record, node.identity.private_key)


@dataclass
class SimulatedSite:
    nodes: list[GossipNode]
    authority: DeviceCertificateAuthority
    addresses: list[str] = field(default_factory=list)

    @classmethod
    def build(cls, workdir: Path, size: int, site: str = "branch") -> SimulatedSite:
        authority = DeviceCertificateAuthority.load_or_create(workdir / "hub-online-keys")
        return cls([make_node(workdir / f"agent-{i}", authority, site, seed=i)
                    for i in range(size)], authority)

    async def start(self, nursery: trio.Nursery) -> None:
        """Serve every node on 127.0.0.1; every node knows every other (as after the
        site's inventories spread) and has published its inventory."""
        for node in self.nodes:
            self.addresses.append(await nursery.start(node.serve, "127.0.0.1", 0))
        for node in self.nodes:
            for address in self.addresses:
                if address != node.members.own_address:
                    node.members.add(address)
            node.publish("inventory", INVENTORY_KEY, Inventory(
                site=node.members.site, gossip=node.members.own_address).model_dump_json())

    async def round(self, fanout: int = 1) -> None:
        async with trio.open_nursery() as nursery:
            for node in self.nodes:
                nursery.start_soon(node.gossip_round, fanout)

    def holders(self, origin: str, key: str) -> int:
        return sum(1 for node in self.nodes if node.store.get(origin, key) is not None)

    def bytes_sent(self) -> int:
        return sum(node.traffic.sent for node in self.nodes)

    def reset_traffic(self) -> None:
        for node in self.nodes:
            node.traffic.sent = node.traffic.received = 0

    async def converge(self, max_rounds: int = 50) -> int:
        """Rounds until every node holds every record; returns how many it took."""
        for done in range(max_rounds + 1):
            digests = [node.store.digest() for node in self.nodes]
            if all(digest == digests[0] for digest in digests):
                return done
            await self.round()
        raise AssertionError(f"site did not converge in {max_rounds} rounds")

    async def spread(self, source: int, record_id: str, max_rounds: int = 50) -> tuple[int, int]:
        """(rounds, wire bytes) until a new result of node `source` is everywhere."""
        node = self.nodes[source]
        node.publish("result", record_id, signed_result(node, record_id).to_bytes().decode())
        self.reset_traffic()
        for rounds in range(1, max_rounds + 1):
            await self.round()
            if self.holders(node.device_id, record_id) == len(self.nodes):
                return rounds, self.bytes_sent()
        raise AssertionError(f"record not everywhere after {max_rounds} rounds")

    def close(self) -> None:
        for node in self.nodes:
            node.store.close()
