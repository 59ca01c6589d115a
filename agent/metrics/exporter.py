"""The daemon's metrics task: the loopback listener, the node-exporter textfile, or both,
as `[metrics]` in agent.toml says (agent/config.py).

The textfile is rewritten every `interval` seconds, and once more as the daemon stops,
atomically (agent/atomic_file.py: node-exporter never reads half a file) with mode 0644
(node-exporter usually runs as another user; nothing in it is secret). A file that
cannot be written is logged, once per kind of failure, and tried again next interval:
metrics never stop the daemon.

This module (and prometheus_client) is imported only when `[metrics]` enables one of
them: an agent without metrics loads none of it (tests/agent/test_idle_imports.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import trio

from agent.atomic_file import write_atomic
from agent.config import MetricsSection
from agent.metrics.agent_metrics import AgentReadings, render
from agent.metrics.http_listener import serve_metrics

log = logging.getLogger(__name__)


class MetricsExporter:
    def __init__(self, config: MetricsSection, read: Callable[[], AgentReadings]) -> None:
        self.config = config
        self.read = read
        self.textfile_writes = 0
        self._last_failure = ""

    def render(self) -> bytes:
        return render(self.read())

    async def write_textfile(self) -> None:
        """Render here (the journal is read in the event loop's thread), write in a worker
        thread (write_atomic fsyncs)."""
        path = self.config.textfile
        if path is None:
            return
        data = self.render()
        try:
            await trio.to_thread.run_sync(lambda: write_atomic(path, data, mode=0o644))
        except OSError as exc:
            failure = f"{type(exc).__name__} {exc.errno}"
            level = logging.DEBUG if failure == self._last_failure else logging.WARNING
            log.log(level, "cannot write metrics textfile %s: %s", path, exc)
            self._last_failure = failure
            return
        self._last_failure = ""
        self.textfile_writes += 1

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            if self.config.listen:
                await nursery.start(serve_metrics, self.config.listen, self.render)
            if self.config.textfile is not None:
                await self.write_textfile()
                nursery.start_soon(self._textfile_loop)
            task_status.started()

    async def _textfile_loop(self) -> None:
        try:
            while True:
                await trio.sleep(self.config.interval)
                await self.write_textfile()
        finally:
            with trio.CancelScope(shield=True):
                await self.write_textfile()  # the daemon's last state, as it stops
