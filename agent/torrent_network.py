"""libtorrent network settings both the agent's session and the hub's seeder need.

libtorrent is imported only by the function that needs it: site gossip and the daemon's
start use `split_listen`, and an idle agent must not carry libtorrent (agent/on_demand_peers.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent.errors import ConfigError

if TYPE_CHECKING:  # a name of its own, so mypy finds a body that uses `lt` unimported
    import libtorrent


def split_listen(listen: str) -> tuple[str, int]:
    """"IP:PORT" or "[IPv6]:PORT" -> (ip, port); raises ConfigError."""
    host, sep, port = listen.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"listen address {listen!r}: expected IP:PORT")
    return host, int(port)


def all_peers_global_filter() -> libtorrent.ip_filter:
    """A peer-class filter putting every IPv4 and IPv6 address in the global class, so
    rate limits apply to LAN and loopback peers too (libtorrent's default exempts them)."""
    import libtorrent as lt
    global_class = 1 << lt.session.global_peer_class_id
    f = lt.ip_filter()
    f.add_rule("0.0.0.0", "255.255.255.255", global_class)  # noqa: S104 - a range, not a bind
    f.add_rule("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", global_class)
    return f


def load_torrent_without_sources(
    torrent_bytes: bytes,
) -> tuple[libtorrent.add_torrent_params, libtorrent.torrent_info]:
    """Add-torrent parameters for `torrent_bytes`, and its torrent_info, with the
    torrent's own trackers
    (`announce`, `announce-list`) and web seeds (BEP 19 `url-list`, BEP 17 `httpseeds`)
    dropped.

    The hub writes its tracker and web seed into every .torrent for standard BitTorrent
    clients (hub/swarm/torrent_maker.py). Meisitong's own sessions must not use them as they
    stand: an agent announces with its device id and adds the web seed only once the swarm
    has stalled for `web_seed_after` seconds (agent/peer_session.py), and the hub's seeder
    announces with its secret (hub/swarm/seeder.py). They sit outside the info dict, so the
    info-hashes are the same either way. Raises RuntimeError (libtorrent's) if the bytes
    are not a valid torrent.
    """
    import libtorrent as lt

    params = lt.load_torrent_buffer(torrent_bytes)
    if params.ti is None:  # a magnet-style buffer without an info dict
        raise RuntimeError("the torrent has no info dict")
    params.trackers = []
    params.tracker_tiers = []
    params.url_seeds = []
    params.http_seeds = []
    return params, params.ti


MIN_ANNOUNCE_INTERVAL = 5
"""libtorrent's floor on a tracker's announce interval (its default is 300 s)."""


def tracker_settings() -> dict[str, int]:
    """Settings so a session announces at the interval its tracker hands out.

    libtorrent announces at max(tracker's interval, `min_announce_interval`), whose
    default of 300 s silently overrode the hub tracker's 30 s: the hub's seeder then
    announced every 5 minutes to a tracker that forgot it after 1, and was missing from
    its own swarms about 4 minutes in 5, so a rollout started later than a minute after
    `serve` found no hub in the swarm until its next announce (tests/bench/branch_office).
    The hub's tracker bounds intervals at 5 s and more (hub/config.py), so this floor
    only guards against a tracker asking for announces in a tight loop.
    """
    return {"min_announce_interval": MIN_ANNOUNCE_INTERVAL}
