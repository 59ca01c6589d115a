"""A listening port that cannot be had is refused naming the address and its setting.

Without this, a port already taken surfaced as `OSError: [Errno 98] Address already in
use` at the bottom of three nested exception groups, with no word of which of a
daemon's listeners (HTTP, gossip) or which line of its config it came from.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import socket
from collections.abc import Iterator

from agent.errors import ListenAddressError


@contextlib.contextmanager
def naming_listen_address(address: str, setting: str) -> Iterator[None]:
    """Turn a failure to bind `address` into a ListenAddressError naming `setting`."""
    try:
        yield
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            why = "already in use (another process listens there: stop it or pick another port)"
        elif exc.errno == errno.EADDRNOTAVAIL:
            why = "not an address of this machine"
        elif exc.errno == errno.EACCES:
            why = "permission denied (ports below 1024 need privileges)"
        else:
            why = exc.strerror or str(exc)
        raise ListenAddressError(f"cannot listen on {address} ({setting}): {why}") from exc


def bound_tcp_socket(address: str, setting: str) -> socket.socket:
    """A TCP socket bound to IP:PORT (not yet listening), for a server to take over."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        with naming_listen_address(address, setting):
            sock.bind((host, int(port)))
    except BaseException:
        sock.close()
        raise
    return sock


def host_port(value: str, key: str) -> str:
    """`value` if it is IP:PORT (the form every listen setting takes), else ValueError
    naming `key`: raised inside config validation, so the error names the file too."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{key} must be IP:PORT, got {value!r}")
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        raise ValueError(f"{key}: {host!r} is not an IP address") from None
    return value


def is_loopback(address: str) -> bool:
    """Whether IP:PORT names a loopback address (127.0.0.0/8, ::1)."""
    host = address.rpartition(":")[0].strip("[]")
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
