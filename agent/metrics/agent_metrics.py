"""What an agent tells Prometheus: taken from the daemon in one go (`AgentReadings`, in
the event loop's thread, where the journal is used) and rendered in the text format.

Counters (bytes, refresh failures) count from the daemon's start, as Prometheus expects;
the rest is the state now. Every label takes a bounded set of values: lifecycle states
(agent/lifecycle.py), download channels, no release names.
"""

from __future__ import annotations

import platform
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.metrics_core import Metric

from agent import __version__
from agent.lifecycle import State

PREFIX = "meisitong_agent"
CHANNELS = ("peers", "hub-seeder", "web-seed")


@dataclass(frozen=True)
class AgentReadings:
    deployments: dict[str, int] = field(default_factory=dict)
    """lifecycle state -> deployments in the journal in it."""
    installs_blocked: bool = False
    """A failed revert stops further installs until `meisitong-agent clear`."""
    metadata_refreshed_at: float | None = None
    """Unix time of the last successful metadata refresh by this daemon."""
    metadata_refresh_failures: int = 0
    outbox_pending: int = 0
    downloaded: dict[str, int] = field(default_factory=dict)
    """channel -> payload bytes of finished downloads."""
    uploaded: int = 0
    libtorrent_session: bool = False


def render(readings: AgentReadings) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_ReadingsCollector(readings))
    return generate_latest(registry)


class _ReadingsCollector:
    def __init__(self, readings: AgentReadings) -> None:
        self.readings = readings

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        r = self.readings
        build = InfoMetricFamily(f"{PREFIX}_build", "This agent's version.")
        build.add_metric([], {"version": __version__, "python": platform.python_version()})
        yield build
        states = GaugeMetricFamily(f"{PREFIX}_deployments",
                                   "Deployments in the journal, by lifecycle state.",
                                   labels=["state"])
        for state in State:
            states.add_metric([state.value], r.deployments.get(state.value, 0))
        yield states
        yield GaugeMetricFamily(f"{PREFIX}_installs_blocked",
                                "1 while a failed revert blocks installs on this device.",
                                value=int(r.installs_blocked))
        if r.metadata_refreshed_at is not None:
            yield GaugeMetricFamily(
                f"{PREFIX}_metadata_last_refresh_timestamp_seconds",
                "When signed metadata was last refreshed (or found unchanged).",
                value=r.metadata_refreshed_at)
        yield CounterMetricFamily(f"{PREFIX}_metadata_refresh_failures",
                                  "Metadata refreshes that failed since the daemon started.",
                                  value=r.metadata_refresh_failures)
        yield GaugeMetricFamily(f"{PREFIX}_outbox_pending_records",
                                "Signed result records not yet delivered to the hub.",
                                value=r.outbox_pending)
        down = CounterMetricFamily(f"{PREFIX}_payload_bytes_downloaded",
                                   "Payload bytes of finished downloads, by where they came "
                                   "from.", labels=["channel"])
        for channel in CHANNELS:
            down.add_metric([channel], r.downloaded.get(channel, 0))
        yield down
        up = CounterMetricFamily(f"{PREFIX}_payload_bytes_uploaded",
                                 "Payload bytes sent to other agents.", labels=["channel"])
        up.add_metric(["peers"], r.uploaded)
        yield up
        yield GaugeMetricFamily(f"{PREFIX}_libtorrent_session",
                                "1 while a libtorrent session exists (a swarm to be in).",
                                value=int(r.libtorrent_session))
