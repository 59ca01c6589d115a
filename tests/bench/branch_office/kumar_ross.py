"""The Kumar–Ross lower bound on the time to give every agent the file, for the
branch-office topology (DESIGN §7).

Kumar and Ross (2006): one server of upload u_s, N peers of upload u_i and download d_i,
file of F bits: T >= max(F/u_s, F/d_min, N*F/(u_s + sum u_i)).

In the harness everything that enters site k crosses its WAN link of capacity W_k (the
hub's namespace does not route between sites, and even if it did, what another site
sends also crosses that link). So each site is a Kumar–Ross swarm whose "server" is
its WAN link, u_s = W_k, and the sites are independent:

    T >= max over sites of max(F/W_k, F/d_min, N_k*F/(W_k + sum of the site's u_i))

If the hub's seeder had an upload limit H, it would add S*F/H (each site needs one copy
from the hub, sites cannot relay to each other); the harness leaves it unlimited, so the
links are the limit for Meisitong and the HTTP baseline alike.

Link rates here are what tc's token bucket lets through, which counts IP and TCP
headers: the best payload rate is about 95% of it, so even a perfect run measures
about 1.05 x the bound.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SiteLinks:
    wan_bytes_per_s: float
    peer_upload_bytes_per_s: list[float]
    peer_download_bytes_per_s: list[float]


def site_bound(file_bytes: float, site: SiteLinks) -> float:
    n = len(site.peer_upload_bytes_per_s)
    return max(
        file_bytes / site.wan_bytes_per_s,
        file_bytes / min(site.peer_download_bytes_per_s),
        n * file_bytes / (site.wan_bytes_per_s + sum(site.peer_upload_bytes_per_s)),
    )


def kumar_ross_bound(
    file_bytes: float, sites: list[SiteLinks], hub_upload_bytes_per_s: float | None = None
) -> float:
    """Seconds; the fastest any scheme can give every agent of every site the file."""
    bound = max(site_bound(file_bytes, site) for site in sites)
    if hub_upload_bytes_per_s:
        bound = max(bound, len(sites) * file_bytes / hub_upload_bytes_per_s)
    return bound


def http_from_hub_bound(file_bytes: float, sites: list[SiteLinks]) -> float:
    """The best plain HTTP from the hub can do: every copy crosses the site's WAN link."""
    return max(
        len(site.peer_upload_bytes_per_s) * file_bytes / site.wan_bytes_per_s for site in sites
    )
