"""Agents and the hub's seeder announce at the interval the hub's tracker hands out:
libtorrent's `min_announce_interval` (300 s by default) would otherwise stretch it, and
the tracker would forget them between announces (issue 10). The seeder's side runs for
real in tests/e2e/test_swarm_membership.py; this pins the setting in both sessions."""

from __future__ import annotations

from agent.peer_session import PeerSession
from hub.config import TrackerSection
from hub.swarm.seeder import HubSeeder
from tests.fleet import free_port


def test_both_sessions_accept_the_shortest_interval_the_tracker_may_hand_out():
    shortest = TrackerSection.model_fields["interval"].metadata
    floor = min(m.ge for m in shortest if hasattr(m, "ge"))
    agent = PeerSession(f"127.0.0.41:{free_port('127.0.0.41')}")
    seeder = HubSeeder(f"127.0.0.42:{free_port('127.0.0.42')}")
    try:
        for session in (agent._session, seeder._session):
            assert session.get_settings()["min_announce_interval"] <= floor
    finally:
        agent.close()
        seeder.close()
