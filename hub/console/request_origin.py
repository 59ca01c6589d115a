"""Where a console request came from and how: its client address, whether it arrived
over HTTPS, and whether a state change was sent by the console's own pages (Origin).

Behind a reverse proxy the TCP peer is the proxy, so the client's address and scheme are
taken from X-Forwarded-For / X-Forwarded-Proto, but only when the peer is one of
`[server] trusted_proxies`: anyone else could send those headers to pass for HTTPS (and
get a cookie without Secure) or for another address (and escape login throttling).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.requests import HTTPConnection

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class TrustedProxies:
    networks: tuple[Network, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> TrustedProxies:
        return cls(tuple(ipaddress.ip_network(entry, strict=False) for entry in entries))

    def trusts(self, address: str | None) -> bool:
        if not address or not self.networks:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.networks)


def _peer(request: HTTPConnection) -> str | None:
    return request.client.host if request.client else None


def is_https(request: HTTPConnection, proxies: TrustedProxies) -> bool:
    """The hub served TLS itself, or a trusted proxy says the client used HTTPS."""
    if request.url.scheme in ("https", "wss"):
        return True
    if proxies.trusts(_peer(request)):
        forwarded = request.headers.get("x-forwarded-proto", "")
        return forwarded.split(",")[0].strip().lower() == "https"
    return False


def client_address(request: HTTPConnection, proxies: TrustedProxies) -> str:
    """The client's address: the TCP peer, or behind a trusted proxy the address that
    proxy appended to X-Forwarded-For (the last entry; the ones before it are whatever
    the client sent)."""
    peer = _peer(request) or "unknown"
    if proxies.trusts(peer):
        forwarded = request.headers.get("x-forwarded-for", "")
        last = forwarded.split(",")[-1].strip()
        if last:
            return last[:64]
    return peer


def own_origin(request: HTTPConnection, proxies: TrustedProxies) -> str:
    scheme = "https" if is_https(request, proxies) else "http"
    return f"{scheme}://{request.headers.get('host', '')}".lower()


def same_origin(request: HTTPConnection, proxies: TrustedProxies) -> bool:
    """Whether the request's Origin (or, lacking one, its Referer) is the console's own
    origin. A request with neither is refused: every browser sends Origin on a POST."""
    origin = request.headers.get("origin")
    if origin == "null":  # a sandboxed or privacy-hidden origin: not the console's pages
        return False
    if origin is None:
        referer = request.headers.get("referer")
        if not referer:
            return False
        parts = urlsplit(referer)
        origin = f"{parts.scheme}://{parts.netloc}"
    return origin.lower().rstrip("/") == own_origin(request, proxies)
