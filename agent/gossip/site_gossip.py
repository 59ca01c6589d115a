"""The daemon's gossip task: this agent's part in its site's anti-entropy.

Every `interval` (jittered) it
- publishes what is new about itself as signed records: each result still waiting in
  the journal's outbox, and its inventory (addresses, trusted timestamp version,
  deployments) when that changed;
- reconciles with `fanout` random site members (push-pull);
- points every torrent of the libtorrent session at the site members' libtorrent
  addresses, so payloads flow between peers with the tracker (the hub) down.
Every `hub_sync_interval` it hands the hub the results and software inventories it lacks,
its own and relayed (agent/gossip/inventory_handover.py); a
result of its own the hub confirms (by this device's id and the record id: another
device may sign a record under the same id) is marked delivered in the journal, whoever
carried it.

It needs the certificate the hub issued at enrollment; without one gossip is off (and
says so), and everything else works as before.
"""

from __future__ import annotations

import json
import logging
import random

import trio

from agent.config import AgentConfig
from agent.device_identity import DeviceIdentity
from agent.errors import ConfigError, HubUnreachableError, ListenAddressError
from agent.gossip.hub_handover import hand_over
from agent.gossip.inventory_handover import hand_over_inventories
from agent.gossip.node import GossipNode, NodeIdentity
from agent.gossip.peer_fetcher import HubOrPeersFetcher
from agent.gossip.relay_files import TrustedFiles
from agent.gossip.site_members import SiteMembers
from agent.gossip.store import GossipStore
from agent.gossip.tls import DeviceCertificates, SiteCredentials
from agent.journal import Journal
from agent.on_demand_peers import OnDemandPeerSession
from agent.state_dir import StateDir
from agent.torrent_network import split_listen
from agent.wire.gossip import INVENTORY_KEY, Inventory

log = logging.getLogger(__name__)

DEFAULT_GOSSIP_PORT = 7881
RECENT_DEPLOYMENTS = 32
_UNSPECIFIED = ("0.0.0.0", "::", "")  # noqa: S104 - compared with, not bound


class SiteGossip:
    def __init__(
        self, node: GossipNode, fetcher: HubOrPeersFetcher, config: AgentConfig,
        journal: Journal, hub_url: str, state: StateDir,
    ) -> None:
        self.node = node
        self.fetcher = fetcher
        self.settings = config.gossip
        self.listen = config.gossip.listen or (
            f"{split_listen(config.p2p.listen)[0]}:{DEFAULT_GOSSIP_PORT}"
        )
        self.p2p_listen = config.p2p.listen
        self.hub_timeout = config.hub.timeout
        self.journal = journal
        self.hub_url = hub_url
        self.state = state
        self._fed: set[tuple[str, str, int]] = set()

    @classmethod
    def from_config(
        cls, config: AgentConfig, state: StateDir, identity: DeviceIdentity, journal: Journal,
        hub_url: str,
    ) -> SiteGossip | None:
        """The task, or None (logged) if gossip is disabled or there is no certificate."""
        if not config.gossip.enabled:
            return None
        credentials = SiteCredentials(
            state.device_certificate, state.device_key, state.hub_ca_certificate
        )
        try:
            device, ca, der = credentials.load()
            if device.device_id != identity.device_id:
                raise ConfigError(f"{state.device_certificate} is for {device.device_id}, "
                                  f"not this device {identity.device_id}; re-enroll")
            server_context, client_context = (
                credentials.server_context(), credentials.client_context()
            )
        except (ConfigError, OSError) as exc:
            log.warning("site gossip is off: %s", exc)
            return None
        node = GossipNode(
            NodeIdentity(device, identity.private_key, der),
            DeviceCertificates(ca),
            server_context,
            client_context,
            GossipStore(state.gossip),
            SiteMembers(device.device_id, device.site, config.gossip.seeds),
            TrustedFiles(state.metadata, state.targets),
        )
        node.learn_members()
        fetcher = HubOrPeersFetcher(hub_url, node, retry_hub_after=config.gossip.retry_hub_after)
        return cls(node, fetcher, config, journal, hub_url, state)

    async def run(
        self, peers: OnDemandPeerSession, *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        host, port = split_listen(self.listen)
        async with trio.open_nursery() as nursery:
            try:
                await nursery.start(self.node.serve, host, port)
                log.info("site gossip on %s (site %s, %d member(s) known)", self.listen,
                         self.node.members.site, len(self.node.members))
            except ListenAddressError as exc:  # a taken port costs gossip, not the daemon
                log.error("site gossip: %s; it only dials out", exc)
            except OSError as exc:
                log.error("site gossip cannot listen on %s (%s); it only dials out",
                          self.listen, exc.strerror or exc)
            nursery.start_soon(self._hub_loop)
            task_status.started()
            while True:
                try:
                    self.publish_own()
                    await self.node.gossip_round(self.settings.fanout)
                    self.feed_swarms(peers)
                except Exception:  # noqa: BLE001 - no peer's data may end the daemon
                    log.exception("gossip round failed (the next one comes as planned)")
                await trio.sleep(self.settings.interval * random.uniform(0.5, 1.5))  # noqa: S311

    def publish_own(self) -> None:
        """Records for results still in the outbox, and the inventory if it changed."""
        store, own = self.node.store, self.node.device_id
        for record_id, body in self.journal.undelivered():
            if store.get(own, record_id) is None:
                self.node.publish("result", record_id, bytes(body).decode("utf-8"))
        inventory = Inventory(
            site=self.node.members.site,
            gossip=_advertised(self.node.members.own_address or self.listen),
            p2p=_advertised(self.p2p_listen, fallback_host=split_listen(self.listen)[0]),
            timestamp_version=self._timestamp_version(),
            deployments={
                d.release: d.state.value for d in self.journal.deployments()[-RECENT_DEPLOYMENTS:]
            },
        ).model_dump_json()
        current = store.get(own, INVENTORY_KEY)
        if current is None or current.body != inventory:
            self.node.publish("inventory", INVENTORY_KEY, inventory)

    def feed_swarms(self, peers: OnDemandPeerSession) -> None:
        for info_hash in peers.seeding():
            for ip, port in self.node.members.p2p_endpoints():
                if (info_hash, ip, port) not in self._fed and peers.add_peer(info_hash, ip, port):
                    self._fed.add((info_hash, ip, port))

    def publish_software(self, key: str, body: str) -> None:
        """Spread this device's signed inventory record (agent/inventory/reporter.py)."""
        current = self.node.store.get(self.node.device_id, key)
        if current is None or current.body != body:
            self.node.publish("software", key, body)

    async def hand_over_once(self) -> None:
        try:
            await hand_over_inventories(self.node.store, self.hub_url, self.hub_timeout)
        except HubUnreachableError as exc:
            log.debug("relayed inventories wait: %s", exc)
        try:
            handover = await hand_over(self.node.store, self.hub_url, self.hub_timeout)
        except HubUnreachableError as exc:
            log.debug("relayed results wait: %s", exc)
            return
        waiting = {record_id for record_id, _body in self.journal.undelivered()}
        own = self.node.device_id
        for device_id, record_id in handover.held:
            if device_id == own and record_id in waiting:
                self.journal.mark_delivered(record_id)

    async def _hub_loop(self) -> None:
        while True:
            await trio.sleep(self.settings.hub_sync_interval)
            try:
                await self.hand_over_once()
            except Exception:  # noqa: BLE001 - no hub answer may end the daemon
                log.exception("handing relayed results to the hub failed; retried later")

    def _timestamp_version(self) -> int:
        try:
            version = json.loads((self.state.metadata / "timestamp.json").read_bytes())
            return int(version["signed"]["version"])
        except (OSError, ValueError, KeyError, TypeError):
            return 0


def _advertised(address: str, fallback_host: str = "") -> str:
    """An address others can dial: a wildcard IP becomes `fallback_host`, or nothing."""
    host, _, port = address.rpartition(":")
    if host.strip("[]") in _UNSPECIFIED:
        host = fallback_host if fallback_host not in _UNSPECIFIED else ""
    return f"{host}:{port}" if host and port else ""
