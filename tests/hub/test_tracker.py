"""The tracker's announce rules, without a network: parse, answer, expire, stop."""

from __future__ import annotations

import ipaddress
from urllib.parse import quote_from_bytes

import httpx
import libtorrent as lt
import pytest
from starlette.applications import Starlette

from hub.errors import TrackerRequestError
from hub.releases.published_releases import PublishedReleases
from hub.swarm.tracker import Swarms
from hub.swarm.tracker_http import tracker_routes
from hub.swarm.tracker_wire import parse_announce

# Bytes that are not valid UTF-8 and include '&', '=', '%' and '+' once encoded.
INFO_HASH = bytes([0xFF, 0x00, 0x26, 0x3D, 0x25, 0x2B]) + bytes(range(0x80, 0x8E))
OTHER_HASH = b"\x01" * 20


def peer_id(n: int) -> bytes:
    return b"-LT2110-" + f"{n:012d}".encode()


def query(info_hash: bytes = INFO_HASH, pid: bytes = peer_id(1), **params: object) -> bytes:
    fields = {"port": 6881, "uploaded": 0, "downloaded": 0, "left": 100, **params}
    text = "&".join(f"{k}={v}" for k, v in fields.items() if v is not None)
    return (
        f"info_hash={quote_from_bytes(info_hash)}&peer_id={quote_from_bytes(pid)}&{text}"
    ).encode()


def decode(answer: bytes) -> dict:
    return lt.bdecode(answer)


def compact_v4(blob: bytes) -> list[tuple[str, int]]:
    return [
        (str(ipaddress.IPv4Address(blob[i : i + 4])), int.from_bytes(blob[i + 4 : i + 6], "big"))
        for i in range(0, len(blob), 6)
    ]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_binary_info_hash_and_peer_id_survive_the_raw_query():
    announce = parse_announce(query(), "10.0.0.7")
    assert announce.info_hash == INFO_HASH
    assert announce.peer_id == peer_id(1)
    assert announce.ip == ipaddress.ip_address("10.0.0.7")
    assert (announce.port, announce.left, announce.event) == (6881, 100, "")


def test_ip_parameter_is_ignored_the_connection_says_where_the_peer_is():
    assert str(parse_announce(query(ip="127.0.0.3"), "127.0.0.1").ip) == "127.0.0.1"
    assert str(parse_announce(query(ip="2001:db8::5"), "10.0.0.7").ip) == "10.0.0.7"
    assert str(parse_announce(query(), "::ffff:10.0.0.8").ip) == "10.0.0.8"


@pytest.mark.parametrize(
    ("raw", "complaint"),
    [
        (query(info_hash=b"short"), "info_hash is 5 bytes"),
        (query(pid=b"x" * 21), "peer_id is 21 bytes"),
        (query(port=0), "port 0 is out of range"),
        (query(port="http"), "'port' is not an integer"),
        (query(port=None), "missing parameter 'port'"),
        (query(left=-1), "'left' is negative"),
        (query(event="exploded"), "unknown event"),
        (b"peer_id=x", "missing parameter 'info_hash'"),
        (b"", "missing parameter 'info_hash'"),
    ],
)
def test_malformed_announce_names_what_is_wrong(raw, complaint):
    with pytest.raises(TrackerRequestError, match=complaint):
        parse_announce(raw, "10.0.0.7")


def test_answer_lists_other_peers_compactly_with_counts():
    swarms = Swarms(interval=60)
    swarms.announce(parse_announce(query(pid=peer_id(1), port=7001, left=0), "10.0.0.1"))
    swarms.announce(parse_announce(query(pid=peer_id(2), port=7002), "10.0.0.2"))
    swarms.announce(parse_announce(query(pid=peer_id(6), port=7006), "2001:db8::6"))
    answer = decode(swarms.announce(parse_announce(query(pid=peer_id(3), port=7003), "10.0.0.3")))
    assert answer[b"interval"] == 60
    assert sorted(compact_v4(answer[b"peers"])) == [("10.0.0.1", 7001), ("10.0.0.2", 7002)]
    assert answer[b"peers6"] == ipaddress.IPv6Address("2001:db8::6").packed + (7006).to_bytes(2)
    assert (answer[b"complete"], answer[b"incomplete"]) == (1, 3)


def test_swarms_are_kept_apart_by_info_hash():
    swarms = Swarms()
    swarms.announce(parse_announce(query(pid=peer_id(1)), "10.0.0.1"))
    answer = decode(swarms.announce(parse_announce(query(OTHER_HASH, peer_id(2)), "10.0.0.2")))
    assert answer[b"peers"] == b""


def test_reannounce_updates_the_peer_instead_of_duplicating_it():
    swarms = Swarms()
    swarms.announce(parse_announce(query(pid=peer_id(1), port=7001), "10.0.0.1"))
    swarms.announce(parse_announce(query(pid=peer_id(1), port=7009, left=0), "10.0.0.9"))
    [peer] = swarms.peers(INFO_HASH)
    assert (str(peer.ip), peer.port, peer.is_seed) == ("10.0.0.9", 7009, True)


def test_stopped_removes_the_peer():
    swarms = Swarms()
    swarms.announce(parse_announce(query(pid=peer_id(1)), "10.0.0.1"))
    swarms.announce(parse_announce(query(pid=peer_id(2)), "10.0.0.2"))
    answer = decode(swarms.announce(parse_announce(query(pid=peer_id(1), event="stopped"),
                                                   "10.0.0.1")))
    assert answer[b"peers"] == b""
    assert [p.peer_id for p in swarms.peers(INFO_HASH)] == [peer_id(2)]


def test_peer_is_forgotten_only_after_missing_three_announces():
    clock = Clock()
    swarms = Swarms(interval=100, clock=clock)
    swarms.announce(parse_announce(query(pid=peer_id(1)), "10.0.0.1"))
    clock.now += 300  # missed two announces: late, not gone
    answer = decode(swarms.announce(parse_announce(query(pid=peer_id(2)), "10.0.0.2")))
    assert compact_v4(answer[b"peers"]) == [("10.0.0.1", 6881)]
    clock.now += 60  # peer 1 last heard 360 s ago > 3.5 x 100 s, peer 2 60 s ago
    answer = decode(swarms.announce(parse_announce(query(pid=peer_id(3)), "10.0.0.3")))
    assert compact_v4(answer[b"peers"]) == [("10.0.0.2", 6881)]


def test_numwant_caps_the_list_and_the_selector_seam_orders_it():
    class ByPort:
        def select(self, _asker, peers, _release):
            return sorted((p for p in peers if p.port != 9999), key=lambda p: p.port)

        def forget(self, _peer, _release):
            pass

    swarms = Swarms(peer_selector=ByPort())
    for n in range(1, 6):
        swarms.announce(parse_announce(query(pid=peer_id(n), port=7000 + n), f"10.0.0.{n}"))
    answer = decode(swarms.announce(parse_announce(query(pid=peer_id(9), port=9999, numwant=2),
                                                   "10.0.0.9")))
    assert compact_v4(answer[b"peers"]) == [("10.0.0.1", 7001), ("10.0.0.2", 7002)]


async def test_route_answers_malformed_with_a_bencoded_failure_and_200_and_uses_source_ip():
    swarms = Swarms()
    app = Starlette(routes=tracker_routes(swarms, PublishedReleases.fixed({INFO_HASH: INFO_HASH})))
    transport = httpx.ASGITransport(app=app, client=("127.0.0.9", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
        bad = await client.get("/announce?info_hash=%FF&peer_id=x&port=1")
        good = await client.get("/announce?" + query().decode())
    assert bad.status_code == 200
    assert decode(bad.content) == {b"failure reason": b"info_hash is 1 bytes, not 20"}
    assert good.status_code == 200
    assert decode(good.content)[b"incomplete"] == 1
    [peer] = swarms.peers(INFO_HASH)
    assert str(peer.ip) == "127.0.0.9"  # the request's source address

