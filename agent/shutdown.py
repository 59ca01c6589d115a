"""Run a daemon's main coroutine until SIGTERM or SIGINT, then cancel it cleanly.

systemd stops services with SIGTERM; cancelling lets nurseries unwind (libtorrent
sessions closed, the journal marked stopped) instead of dying mid-write.
"""

from __future__ import annotations

import signal
from collections.abc import Awaitable, Callable

import trio


async def run_until_signalled(main: Callable[[], Awaitable[None]]) -> None:
    """Run `main`; a single error it ends with comes out bare, for the CLI to print."""
    try:
        async with trio.open_nursery() as nursery:

            async def watch() -> None:
                with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                    async for _ in signals:
                        nursery.cancel_scope.cancel()
                        return

            nursery.start_soon(watch)
            await main()
            nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        leaf = sole_leaf(group)
        if leaf is None:
            raise
        raise leaf from None


def sole_leaf(group: BaseExceptionGroup) -> BaseException | None:
    """The one exception at the bottom of nested groups, or None if there are several.

    Every nursery wraps what it raises in a group; a refusal such as "already running"
    must reach the user as its own message, not under three tracebacks.
    """
    current: BaseException = group
    while isinstance(current, BaseExceptionGroup):
        if len(current.exceptions) != 1:
            return None
        current = current.exceptions[0]
    return current
