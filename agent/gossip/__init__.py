"""Site gossip: agents of a branch office reconcile signed records (results, inventory
summaries) by Scuttlebutt push-pull over mutual TLS, relay TUF metadata to each other
while the hub is down, and hand the hub whatever results it lacks.

What the rest of the agent uses: `SiteGossip` (the daemon's task) and
`refresh_metadata` (a TUF refresh that goes on to the next peer when one served
metadata TUF refuses).
"""

from agent.gossip.peer_fetcher import refresh_metadata
from agent.gossip.site_gossip import SiteGossip

__all__ = ["SiteGossip", "refresh_metadata"]
