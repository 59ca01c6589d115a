"""Site-aware answers of the tracker (hub/swarm/site_peers.py): own-site peers only, the hub's
address for one gateway per site, failover when the gateway leaves, and the device table
as the source of sites. No network except the ASGI route test; a real SQLite file."""

from __future__ import annotations

import ipaddress
from urllib.parse import quote_from_bytes

import httpx
import libtorrent as lt
import pytest
from starlette.applications import Starlette

from hub.database import HubDatabase, utc_now
from hub.errors import TrackerRequestError
from hub.releases.published_releases import PublishedReleases
from hub.swarm.site_peers import DeviceSites, SitePeerSelector
from hub.swarm.tracker import Swarms
from hub.swarm.tracker_http import tracker_routes
from hub.swarm.tracker_wire import parse_announce

INFO_HASH = b"\x07" * 20
HUB_KEY = "s3cret-hub-key"
HUB_IP = "198.18.0.1"


def peer_id(n: int) -> bytes:
    return b"-MA0001-" + f"{n:012d}".encode()


def raw_query(n: int, device: str | None = None, hub: str | None = None, **params: object):
    fields = {"port": 6881, "uploaded": 0, "downloaded": 0, "left": 100, **params}
    if device:
        fields["device"] = device
    if hub:
        fields["hub"] = hub
    text = "&".join(f"{k}={v}" for k, v in fields.items())
    return (
        f"info_hash={quote_from_bytes(INFO_HASH)}&peer_id={quote_from_bytes(peer_id(n))}&{text}"
    ).encode()


def addresses(answer: bytes) -> list[str]:
    blob = lt.bdecode(answer)[b"peers"]
    return [str(ipaddress.IPv4Address(blob[i : i + 4])) for i in range(0, len(blob), 6)]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Fleet:
    """A tracker with a site selector; agent n of site s listens on 198.18.s.n."""

    def __init__(self, per_site: int = 1) -> None:
        self.clock = Clock()
        self.swarms = Swarms(
            interval=30, peer_selector=SitePeerSelector(per_site), clock=self.clock,
            hub_key=HUB_KEY,
        )

    def agent(self, site: int, n: int, **params: object) -> list[str]:
        self.clock.now += 0.01
        request = parse_announce(raw_query(100 * site + n, f"dev-{site}-{n}", **params),
                                 f"198.18.{site}.{n}")
        return addresses(self.swarms.announce(request, f"site{site}"))

    def hub(self, key: str = HUB_KEY) -> list[str]:
        self.clock.now += 0.01
        answer = self.swarms.announce(parse_announce(raw_query(0, hub=key, left=0), HUB_IP))
        return addresses(answer)


def test_agent_is_told_only_peers_of_its_own_site():
    fleet = Fleet()
    fleet.hub()
    for site in (1, 2):
        for n in (1, 2, 3):
            fleet.agent(site, n)
    assert sorted(fleet.agent(2, 3)) == ["198.18.2.1", "198.18.2.2"]


def test_only_the_oldest_agent_of_a_site_learns_the_hub_and_first():
    fleet = Fleet()
    fleet.hub()
    assert fleet.agent(1, 1) == [HUB_IP]
    fleet.agent(1, 2)
    fleet.agent(1, 3)
    assert fleet.agent(1, 1)[0] == HUB_IP
    assert HUB_IP not in fleet.agent(1, 2)
    assert HUB_IP not in fleet.agent(1, 3)


def test_hub_is_told_only_of_each_sites_gateway():
    fleet = Fleet()
    fleet.hub()
    for site in (1, 2, 3):
        for n in (1, 2, 3, 4):
            fleet.agent(site, n)
    assert sorted(fleet.hub()) == ["198.18.1.1", "198.18.2.1", "198.18.3.1"]


def test_gateway_that_stops_is_replaced_by_the_next_oldest_of_its_site():
    fleet = Fleet()
    fleet.hub()
    for n in (1, 2, 3):
        fleet.agent(1, n)
    fleet.agent(1, 1, event="stopped")
    assert fleet.agent(1, 2) == [HUB_IP, "198.18.1.3"]
    assert fleet.hub() == ["198.18.1.2"]


def test_silent_gateway_expires_after_three_missed_announces_and_the_next_one_takes_over():
    fleet = Fleet()
    fleet.hub()
    for n in (1, 2):
        fleet.agent(1, n)
    for _ in range(3):  # agent 1 stays silent, agent 2 and the hub announce every 30 s
        fleet.clock.now += 30
        fleet.agent(1, 2)
        fleet.hub()
    assert fleet.hub() == ["198.18.1.1"]  # 90 s: late by two announces, still the gateway
    fleet.clock.now += 16  # agent 1 last heard 106 s ago > 3.5 x 30 s
    assert fleet.agent(1, 2) == [HUB_IP]
    assert fleet.hub() == ["198.18.1.2"]


def test_gateway_stays_when_an_agent_seen_earlier_joins_the_swarm_later():
    """Election is by age, but only among the agents present: an agent the tracker has
    known for longer (from another release) does not unseat a gateway that announces."""
    fleet = Fleet()
    other_release = b"\x09" * 20
    veteran = parse_announce(
        raw_query(101, "dev-1-1").replace(
            f"info_hash={quote_from_bytes(INFO_HASH)}".encode(),
            f"info_hash={quote_from_bytes(other_release)}".encode()),
        "198.18.1.1")
    fleet.swarms.announce(veteran, "site1")
    fleet.clock.now += 20
    fleet.hub()
    assert fleet.agent(1, 2) == [HUB_IP]  # agent 2 is the first of site 1 in this swarm
    for _ in range(10):
        fleet.clock.now += 30
        assert HUB_IP not in fleet.agent(1, 1)
        assert fleet.agent(1, 2)[0] == HUB_IP
        assert fleet.hub() == ["198.18.1.2"]


def test_gateway_late_by_one_announce_keeps_its_place():
    fleet = Fleet()
    fleet.hub()
    fleet.agent(1, 1)
    fleet.agent(1, 2)
    fleet.clock.now += 61  # a lost announce: agent 1 is late, not gone
    assert fleet.agent(1, 2) == ["198.18.1.1"]
    assert fleet.hub() == ["198.18.1.1"]


def test_hub_serving_long_before_a_rollout_is_in_the_swarm_when_agents_arrive():
    """The hub's seeder announces at the tracker's interval (agent/torrent_network.py);
    ten minutes of serving before anyone joins must not have expired it."""
    fleet = Fleet()
    for _ in range(20):
        fleet.hub()
        fleet.clock.now += 30
    assert fleet.agent(1, 1) == [HUB_IP]
    assert fleet.hub() == ["198.18.1.1"]


def test_several_gateways_per_site_when_configured():
    fleet = Fleet(per_site=2)
    fleet.hub()
    for n in (1, 2, 3, 4):
        fleet.agent(1, n)
    assert sorted(fleet.hub()) == ["198.18.1.1", "198.18.1.2"]
    assert HUB_IP in fleet.agent(1, 2)
    assert HUB_IP not in fleet.agent(1, 3)


def test_agent_of_unknown_site_gets_everyone_and_the_hub_seeds_it():
    fleet = Fleet()
    fleet.hub()
    fleet.agent(1, 1)
    fleet.agent(1, 2)
    stranger = parse_announce(raw_query(999), "198.18.9.9")  # no device id
    assert sorted(addresses(fleet.swarms.announce(stranger))) == [
        HUB_IP, "198.18.1.1", "198.18.1.2"
    ]
    assert sorted(fleet.hub()) == ["198.18.1.1", "198.18.9.9"]
    assert "198.18.9.9" not in fleet.agent(1, 2)


def test_a_wrong_hub_key_makes_an_ordinary_peer_not_the_hub():
    fleet = Fleet()
    impostor = parse_announce(raw_query(7, hub="guessed", left=0), "198.18.7.7")
    fleet.swarms.announce(impostor)
    fleet.agent(1, 1)
    [peer] = [p for p in fleet.swarms.peers(INFO_HASH) if str(p.ip) == "198.18.7.7"]
    assert not peer.is_hub
    assert fleet.agent(1, 2) == ["198.18.1.1"]  # an unknown-site peer is not listed


def test_malformed_device_id_is_refused_by_name():
    with pytest.raises(TrackerRequestError, match="'device' is not a device id"):
        parse_announce(raw_query(1, device="DEV/../x"), "198.18.1.1")


def add_device(database: HubDatabase, device_id: str, site: str, status: str) -> None:
    with database.transaction() as db:
        db.execute(
            "INSERT INTO devices (device_id, public_key, name, hostname, grp, site, status, "
            "enrolled_at) VALUES (?, ?, ?, ?, 'lab', ?, ?, ?)",
            (device_id, b"k" * 32, device_id, device_id, site, status, utc_now()),
        )


async def test_route_reads_sites_from_the_device_table_and_after_a_libtorrent_style_query(
    tmp_path,
):
    database = HubDatabase.create(tmp_path / "hub.sqlite")
    add_device(database, "dev-aaaa", "paris", "accepted")
    add_device(database, "dev-bbbb", "paris", "pending")
    database.close()
    swarms = Swarms(peer_selector=SitePeerSelector(), hub_key=HUB_KEY)
    sites = DeviceSites(tmp_path / "hub.sqlite")
    published = PublishedReleases.fixed({INFO_HASH: INFO_HASH})
    app = Starlette(routes=tracker_routes(swarms, published, sites.site_of))
    transport = httpx.ASGITransport(app=app, client=("198.18.1.5", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
        for n, device in ((1, "dev-aaaa"), (2, "dev-bbbb"), (3, "dev-cccc")):
            # libtorrent appends its parameters with '&' after our `?device=...`.
            url = f"/announce?device={device}&" + raw_query(n).decode()
            assert (await client.get(url)).status_code == 200
    by_device = {p.device: p.site for p in swarms.peers(INFO_HASH)}
    assert by_device == {"dev-aaaa": "paris", "dev-bbbb": None, "dev-cccc": None}


async def test_device_sites_are_cached_for_their_ttl():
    clock = Clock()
    reads: list[str] = []

    class Counting(DeviceSites):
        def _read(self, device_id: str) -> str | None:
            reads.append(device_id)
            return "paris"

    sites = Counting(database=None, ttl=60, clock=clock)  # type: ignore[arg-type]
    assert await sites.site_of("dev-aaaa") == "paris"
    clock.now += 59
    await sites.site_of("dev-aaaa")
    clock.now += 2
    await sites.site_of("dev-aaaa")
    assert reads == ["dev-aaaa", "dev-aaaa"]


def test_both_swarms_of_a_hybrid_torrent_elect_the_same_gateway():
    """libtorrent announces a hybrid torrent under its v1 and v2 hashes; agents' announces
    interleave differently in the two swarms."""
    swarms = Swarms(peer_selector=SitePeerSelector(), hub_key=HUB_KEY)
    v1, v2 = b"\x01" * 20, b"\x02" * 20

    def announce(info_hash: bytes, n: int, **params: object) -> list[str]:
        raw = raw_query(n, f"dev-1-{n}", **params).replace(
            f"info_hash={quote_from_bytes(INFO_HASH)}".encode(),
            f"info_hash={quote_from_bytes(info_hash)}".encode(),
        )
        return addresses(swarms.announce(parse_announce(raw, f"198.18.1.{n}"), "site1", v1))

    for info_hash in (v1, v2):
        swarms.announce(parse_announce(
            raw_query(0, hub=HUB_KEY, left=0).replace(
                f"info_hash={quote_from_bytes(INFO_HASH)}".encode(),
                f"info_hash={quote_from_bytes(info_hash)}".encode()),
            HUB_IP), None, v1)
    announce(v1, 1)
    announce(v1, 2)
    announce(v2, 2)  # agent 2 is first in the v2 swarm
    announce(v2, 1)
    assert HUB_IP in announce(v1, 1) and HUB_IP in announce(v2, 1)
    assert HUB_IP not in announce(v1, 2) and HUB_IP not in announce(v2, 2)
