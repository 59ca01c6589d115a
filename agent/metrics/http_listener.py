"""The agent's metrics listener: `GET /metrics` over plain HTTP/1.0, in the daemon's own
event loop (no web framework, no thread: prometheus_client's `start_http_server` runs a
thread per server, and an idle agent should carry no more than it needs).

It listens on loopback unless the config explicitly allows otherwise (agent/config.py):
there is no authentication. Whatever connects may be hostile: a request is read for at
most REQUEST_TIMEOUT seconds and MAX_REQUEST_BYTES bytes, anything but `GET /metrics`
gets a 404 or 405, and no client can end or stall the daemon.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import trio

from agent.listen_address import bound_tcp_socket

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 8192
REQUEST_TIMEOUT = 5.0
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _answer(status: str, body: bytes, content_type: str = "text/plain; charset=utf-8") -> bytes:
    head = (f"HTTP/1.0 {status}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
    return head.encode("ascii") + body


def answer_request(head: bytes, render: Callable[[], bytes]) -> bytes:
    """The whole response to a request whose head (up to the blank line) is `head`."""
    request_line = head.split(b"\r\n", 1)[0].split(b" ")
    if len(request_line) != 3 or not request_line[2].startswith(b"HTTP/"):
        return _answer("400 Bad Request", b"not an HTTP request\n")
    method, target = request_line[0], request_line[1].split(b"?", 1)[0]
    if target != b"/metrics":
        return _answer("404 Not Found", b"only /metrics is here\n")
    if method not in (b"GET", b"HEAD"):
        return _answer("405 Method Not Allowed", b"GET /metrics\n")
    response = _answer("200 OK", render(), CONTENT_TYPE)
    return response.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n" if method == b"HEAD" else response


async def _read_head(stream: trio.SocketStream) -> bytes | None:
    data = b""
    while b"\r\n\r\n" not in data:
        if len(data) > MAX_REQUEST_BYTES:
            return None
        chunk = await stream.receive_some(4096)
        if not chunk:
            return None
        data += chunk
    return data.split(b"\r\n\r\n", 1)[0]


async def serve_metrics(listen: str, render: Callable[[], bytes], *,
                        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """Serve `render()` at http://LISTEN/metrics until cancelled."""
    sock = bound_tcp_socket(listen, "[metrics] listen in agent.toml")
    sock.listen(16)
    listener = trio.SocketListener(trio.socket.from_stdlib_socket(sock))

    async def handle(stream: trio.SocketStream) -> None:
        try:
            with trio.move_on_after(REQUEST_TIMEOUT):
                head = await _read_head(stream)
                if head is None:
                    await stream.send_all(_answer("400 Bad Request", b"bad request\n"))
                else:
                    await stream.send_all(answer_request(head, render))
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass  # the client went away
        except Exception:  # noqa: BLE001 - no client may end the daemon
            log.exception("metrics listener: answering a request failed")
        finally:
            await stream.aclose()

    log.info("metrics on http://%s/metrics", listen)
    task_status.started()
    await trio.serve_listeners(handle, [listener])
