"""Run a daemon's main coroutine until SIGTERM or SIGINT, then cancel it cleanly.

systemd stops services with SIGTERM; cancelling lets nurseries unwind (libtorrent
sessions closed, the journal marked stopped) instead of dying mid-write.
"""

from __future__ import annotations

import signal
from collections.abc import Awaitable, Callable

import trio


async def run_until_signalled(main: Callable[[], Awaitable[None]]) -> None:
    async with trio.open_nursery() as nursery:

        async def watch() -> None:
            with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for _ in signals:
                    nursery.cancel_scope.cancel()
                    return

        nursery.start_soon(watch)
        await main()
        nursery.cancel_scope.cancel()
