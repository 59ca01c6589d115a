"""The branch-office network, built for real from network namespaces, and torn down.

    hub namespace        router namespace           site k namespace    agent (k, j) namespace
    eth0 198.18.0.1/30 - uplink 198.18.0.2/30
                         wan<k> 198.18.k.1/24 =WAN= port wan (br0)
                                                    port a<j> ==LAN== eth0 198.18.k.(10+j)/24

- The hub has one interface, as a server does: libtorrent binds its listen sockets to
  the device that holds the address, so a hub address on `lo` reached over several
  veths would refuse every connection. Its uplink to the router is not shaped.
- One namespace per agent, so agents of a site really talk across the site's bridge
  (and BEP 14 multicast reaches them all), and one per site holding only the bridge.
- WAN link of site k: a veth pair between the router and the site's bridge, shaped with
  `tbf` in both directions (hub->site on wan<k>, site->hub on the bridge port `wan`).
  LAN links: each agent's veth, shaped with `tbf` in both directions too.
- Bandwidth only. This kernel has no `netem`, so no delay or loss is emulated: RTTs are
  sub-millisecond, a WAN's latency is missing from every figure.
- Addresses are in 198.18.0.0/15 (RFC 2544 benchmarking) and nothing is routed off the
  machine: the namespaces have no link to the host's own network. The router forwards
  between the hub and the sites (and between sites, across both sites' WAN links; the
  tracker never suggests such peers).

Every namespace is named with the run's prefix; `teardown` deletes exactly those, which
also deletes every veth and bridge in them.
"""

from __future__ import annotations

import logging
import subprocess
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

HUB_IP = "198.18.0.1"


def run(*argv: str) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: exit {result.returncode}: {result.stderr.strip()}")


def shape(namespace: str, device: str, mbit: float) -> None:
    """Token bucket at `mbit` on `device`'s egress. The bucket holds at least one 64 KiB
    GSO super-packet, the queue about 50 ms of traffic (tail-dropped beyond)."""
    rate_bytes = mbit * 1e6 / 8
    burst = max(64 * 1024, int(rate_bytes / 100))
    limit = max(2 * burst, int(rate_bytes * 0.05))
    run("ip", "-n", namespace, "link", "set", device, "txqueuelen", "1000")
    run("tc", "-n", namespace, "qdisc", "add", "dev", device, "root", "tbf",
        "rate", f"{mbit}mbit", "burst", str(burst), "limit", str(limit))


@dataclass(frozen=True)
class Agent:
    site: int
    index: int
    namespace: str
    ip: str


@dataclass
class Topology:
    prefix: str
    sites: int
    agents_per_site: int
    wan_mbit: float
    lan_mbit: float
    namespaces: list[str] = field(default_factory=list)

    @property
    def hub_namespace(self) -> str:
        return f"{self.prefix}-hub"

    @property
    def router_namespace(self) -> str:
        return f"{self.prefix}-wan"

    def site_namespace(self, site: int) -> str:
        return f"{self.prefix}-s{site}"

    def agents(self) -> list[Agent]:
        return [
            Agent(site, j, f"{self.prefix}-s{site}a{j}", f"198.18.{site}.{10 + j}")
            for site in range(1, self.sites + 1)
            for j in range(1, self.agents_per_site + 1)
        ]

    def _add_namespace(self, name: str) -> None:
        run("ip", "netns", "add", name)
        self.namespaces.append(name)
        run("ip", "-n", name, "link", "set", "lo", "up")

    def build(self) -> None:
        if not 1 <= self.sites <= 200 or not 1 <= self.agents_per_site <= 200:
            raise ValueError("sites and agents per site must be within 1..200")
        hub, router = self.hub_namespace, self.router_namespace
        self._add_namespace(hub)
        self._add_namespace(router)
        run("ip", "-n", hub, "link", "add", "eth0", "type", "veth",
            "peer", "name", "uplink", "netns", router)
        run("ip", "-n", hub, "addr", "add", f"{HUB_IP}/30", "dev", "eth0")
        run("ip", "-n", hub, "link", "set", "eth0", "up")
        run("ip", "-n", hub, "route", "add", "default", "via", "198.18.0.2")
        run("ip", "-n", router, "addr", "add", "198.18.0.2/30", "dev", "uplink")
        run("ip", "-n", router, "link", "set", "uplink", "up")
        run("ip", "netns", "exec", router, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
        for site in range(1, self.sites + 1):
            ns = self.site_namespace(site)
            self._add_namespace(ns)
            run("ip", "-n", ns, "link", "add", "br0", "type", "bridge")
            run("ip", "-n", ns, "link", "set", "br0", "up")
            run("ip", "-n", router, "link", "add", f"wan{site}", "type", "veth",
                "peer", "name", "wan", "netns", ns)
            run("ip", "-n", router, "addr", "add", f"198.18.{site}.1/24", "dev", f"wan{site}")
            run("ip", "-n", router, "link", "set", f"wan{site}", "up")
            run("ip", "-n", ns, "link", "set", "wan", "master", "br0", "up")
            shape(router, f"wan{site}", self.wan_mbit)
            shape(ns, "wan", self.wan_mbit)
        for agent in self.agents():
            site_ns = self.site_namespace(agent.site)
            port = f"a{agent.index}"
            self._add_namespace(agent.namespace)
            run("ip", "-n", site_ns, "link", "add", port, "type", "veth",
                "peer", "name", "eth0", "netns", agent.namespace)
            run("ip", "-n", site_ns, "link", "set", port, "master", "br0", "up")
            run("ip", "-n", agent.namespace, "addr", "add", f"{agent.ip}/24", "dev", "eth0")
            run("ip", "-n", agent.namespace, "link", "set", "eth0", "up")
            run("ip", "-n", agent.namespace, "route", "add", "default",
                "via", f"198.18.{agent.site}.1")
            shape(site_ns, port, self.lan_mbit)
            shape(agent.namespace, "eth0", self.lan_mbit)

    def hub_wan_tx_bytes(self) -> int:
        """Bytes the hub has sent on its only interface (payload, headers, metadata)."""
        out = subprocess.run(
            ["ip", "netns", "exec", self.hub_namespace, "cat",
             "/sys/class/net/eth0/statistics/tx_bytes"],
            capture_output=True, text=True, check=True,
        ).stdout
        return int(out)

    def teardown(self) -> None:
        """Delete every namespace this run created (their veths and bridges go with them).
        Never raises: it runs in `finally` blocks."""
        for name in reversed(self.namespaces):
            result = subprocess.run(["ip", "netns", "del", name], capture_output=True,
                                    text=True, check=False)
            if result.returncode != 0:
                log.warning("could not delete namespace %s: %s", name, result.stderr.strip())
        self.namespaces.clear()
