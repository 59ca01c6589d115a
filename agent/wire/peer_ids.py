"""What the hub's seeder and the agents tell apart each other by in a swarm, and how
both put their own parameters into a tracker URL.

Peer-id prefixes are self-declared (libtorrent's `peer_fingerprint`), so they only sort
statistics (bytes from the hub versus from peers), never trust.
"""

from __future__ import annotations

from urllib.parse import quote

HUB_PEER_ID_PREFIX = b"-MH0001-"
AGENT_PEER_ID_PREFIX = b"-MA0001-"


def with_query_parameter(url: str, name: str, value: str) -> str:
    """`url` with `name=value` appended to its query. libtorrent appends its announce
    parameters with '&' to a URL that already has a '?', so ours survive."""
    return f"{url}{'&' if '?' in url else '?'}{quote(name)}={quote(value, safe='')}"
