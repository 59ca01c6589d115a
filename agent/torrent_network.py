"""libtorrent network settings both the agent's session and the hub's seeder need."""

from __future__ import annotations

import libtorrent as lt

from agent.errors import ConfigError


def split_listen(listen: str) -> tuple[str, int]:
    """"IP:PORT" or "[IPv6]:PORT" -> (ip, port); raises ConfigError."""
    host, sep, port = listen.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"listen address {listen!r}: expected IP:PORT")
    return host, int(port)


def all_peers_global_filter() -> lt.ip_filter:
    """A peer-class filter putting every IPv4 and IPv6 address in the global class, so
    rate limits apply to LAN and loopback peers too (libtorrent's default exempts them)."""
    global_class = 1 << lt.session.global_peer_class_id
    f = lt.ip_filter()
    f.add_rule("0.0.0.0", "255.255.255.255", global_class)  # noqa: S104 - a range, not a bind
    f.add_rule("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", global_class)
    return f
