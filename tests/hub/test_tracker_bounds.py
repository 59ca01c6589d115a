"""What the tracker keeps is bounded and expires: swarms, peers per swarm, peers per
address, and the per-device ages. Pure, on a fake clock."""

from __future__ import annotations

from urllib.parse import quote_from_bytes

import pytest

from hub.errors import TrackerRefusedError
from hub.swarm.tracker import Swarms
from hub.swarm.tracker_wire import parse_announce


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def announce(swarms: Swarms, info_hash: int, peer: int, ip: str, **params: object) -> bytes:
    pid = b"-MA0001-" + f"{peer:012d}".encode()
    fields = {"port": 6881, "left": 100, **params}
    text = "&".join(f"{k}={v}" for k, v in fields.items())
    raw = (f"info_hash={quote_from_bytes(bytes([info_hash]) * 20)}&"
           f"peer_id={quote_from_bytes(pid)}&{text}").encode()
    return swarms.announce(parse_announce(raw, ip))


def test_a_swarm_past_its_peer_bound_refuses_newcomers_but_not_members():
    swarms = Swarms(max_peers=3)
    for n in range(3):
        announce(swarms, 1, n, f"10.0.0.{n + 1}")
    with pytest.raises(TrackerRefusedError, match="swarm full: 3 peers"):
        announce(swarms, 1, 9, "10.0.0.9")
    announce(swarms, 1, 0, "10.0.0.1", left=0)  # a member re-announces
    assert len(swarms.peers(bytes([1]) * 20)) == 3


def test_one_address_cannot_fill_a_swarm():
    swarms = Swarms(max_per_address=2)
    announce(swarms, 1, 1, "10.0.0.1")
    announce(swarms, 1, 2, "10.0.0.1")
    with pytest.raises(TrackerRefusedError, match="2 peers from 10.0.0.1 already"):
        announce(swarms, 1, 3, "10.0.0.1")
    announce(swarms, 1, 4, "10.0.0.2")
    announce(swarms, 2, 3, "10.0.0.1")  # another swarm: its own count


def test_swarm_count_is_bounded_and_expired_swarms_make_room():
    clock = Clock()
    swarms = Swarms(interval=10, clock=clock, max_swarms=2)
    announce(swarms, 1, 1, "10.0.0.1")
    announce(swarms, 2, 1, "10.0.0.1")
    with pytest.raises(TrackerRefusedError, match="tracker full: 2 swarms"):
        announce(swarms, 3, 1, "10.0.0.1")
    clock.now += 36  # both swarms' only peer missed three announces
    announce(swarms, 3, 1, "10.0.0.1")
    assert swarms.info_hashes() == [bytes([3]) * 20]


def test_sweep_forgets_silent_peers_of_swarms_nobody_announces_to():
    clock = Clock()
    swarms = Swarms(interval=10, clock=clock)
    for n in range(50):
        announce(swarms, n + 1, n, "10.0.0.1")
    clock.now += 36
    announce(swarms, 200, 1, "10.0.0.2")
    assert swarms.info_hashes() == [bytes([200]) * 20]
    assert len(swarms._joined) == 1  # ages of forgotten peers go too


def test_stopped_leaves_no_empty_swarm_behind():
    swarms = Swarms()
    announce(swarms, 1, 1, "10.0.0.1")
    announce(swarms, 1, 1, "10.0.0.1", event="stopped")
    assert swarms.info_hashes() == []
