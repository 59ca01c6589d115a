"""What a serving hub tells Prometheus, in one registry of its own (not the library's
global one: a test process may run several hubs).

- Counted as it happens, in this process: HTTP request latencies (per route template,
  hub/metrics/request_timing.py), results ingested by outcome (new records; copies of
  records the hub already holds are counted apart), tracker announces (accepted or
  refused).
- Read at scrape time: devices by status and presence and rollouts by state and stage
  from the database (hub/metrics/fleet_state.py, so the CLI's changes show), and from
  this process's memory the payload bytes its seeder and web seed have sent since it
  started (the figures hub/serve.py records in transfer_stats) and the tracker's
  swarms.

Counters start at zero when `serve` starts, as Prometheus expects of counters.
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.metrics_core import Metric

from agent import __version__
from hub.metrics.fleet_state import FleetState, FleetStateCache

PREFIX = "meisitong_hub"
DEVICE_STATUSES = ("accepted", "pending", "removed")  # hub/devices/enrollment.py
REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                   10.0, 30.0)


@dataclass(frozen=True)
class ProcessCounts:
    """What this process holds in memory, taken in the event loop's thread at scrape."""

    payload_bytes_sent: dict[str, int] = field(default_factory=dict)
    """channel ("seeder", "web-seed") -> payload bytes sent since `serve` started."""
    swarm_peers: dict[str, int] = field(default_factory=dict)
    """"seeder" / "leecher" -> peers the tracker lists now, over every swarm."""
    swarms: int = 0


class HubMetrics:
    def __init__(self, fleet: FleetStateCache,
                 process_counts: Callable[[], ProcessCounts] = ProcessCounts) -> None:
        self.fleet = fleet
        self.process_counts = process_counts
        self.registry = CollectorRegistry(auto_describe=True)
        self.request_seconds = Histogram(
            f"{PREFIX}_http_request_duration_seconds",
            "Time from a request's arrival to the end of its answer, per route template.",
            ["method", "route", "status"], buckets=REQUEST_BUCKETS, registry=self.registry)
        self.results_ingested = Counter(
            f"{PREFIX}_results_ingested", "Device-signed result records stored, by outcome.",
            ["outcome"], registry=self.registry)
        self.results_duplicate = Counter(
            f"{PREFIX}_results_duplicate",
            "Result records received again (retries, relays' copies), not stored twice.",
            registry=self.registry)
        self.announces = Counter(
            f"{PREFIX}_tracker_announces", "Tracker announces answered, by result.",
            ["result"], registry=self.registry)
        for result in ("accepted", "refused"):
            self.announces.labels(result=result)
        self.registry.register(_ScrapeTimeCollector(self))
        self._fleet_state = FleetState()

    def observe_request(self, method: str, route: str, status: str, seconds: float) -> None:
        self.request_seconds.labels(method=method, route=route, status=status).observe(seconds)

    def result_ingested(self, outcome: str, stored: bool) -> None:
        if stored:
            self.results_ingested.labels(outcome=outcome).inc()
        else:
            self.results_duplicate.inc()

    def announce_answered(self, accepted: bool) -> None:
        self.announces.labels(result="accepted" if accepted else "refused").inc()

    async def render(self) -> bytes:
        """The exposition text: the database counts (at most a second old) first, then
        everything else read synchronously in this thread."""
        self._fleet_state = await self.fleet.get()
        return generate_latest(self.registry)


class _ScrapeTimeCollector:
    """The values read at scrape time (module docstring)."""

    def __init__(self, metrics: HubMetrics) -> None:
        self.metrics = metrics

    def describe(self) -> Iterable[Metric]:
        return []  # values only exist at scrape time; nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        build = InfoMetricFamily(f"{PREFIX}_build", "This hub's version.")
        build.add_metric([], {"version": __version__, "python": platform.python_version()})
        yield build
        state = self.metrics._fleet_state
        devices = GaugeMetricFamily(
            f"{PREFIX}_devices", "Devices by enrollment status and presence (online: heard "
            "from within [metrics] online_within).", labels=["status", "presence"])
        # Every known status and presence is there, zero or not, so a rate or an alert
        # on one does not vanish when no device is in it.
        known = {(status, presence): 0 for status in DEVICE_STATUSES
                 for presence in ("online", "stale")}
        for (status, presence), count in sorted({**known, **state.devices}.items()):
            devices.add_metric([status, presence], count)
        yield devices
        rollouts = GaugeMetricFamily(
            f"{PREFIX}_rollouts", "Rollouts (one per release and group) by state and current "
            "stage percent.", labels=["state", "stage_percent"])
        for (rollout_state, stage), count in sorted(state.rollouts.items()):
            rollouts.add_metric([rollout_state, str(stage)], count)
        yield rollouts
        counts = self.metrics.process_counts()
        sent = CounterMetricFamily(
            f"{PREFIX}_payload_bytes_sent", "Payload bytes sent since serve started, by the "
            "BitTorrent seeder and the HTTP web seed.", labels=["channel"])
        for channel in ("seeder", "web-seed"):
            sent.add_metric([channel], counts.payload_bytes_sent.get(channel, 0))
        yield sent
        peers = GaugeMetricFamily(f"{PREFIX}_tracker_peers",
                                  "Peers the tracker lists now, over every swarm.",
                                  labels=["kind"])
        for kind in ("seeder", "leecher"):
            peers.add_metric([kind], counts.swarm_peers.get(kind, 0))
        yield peers
        yield GaugeMetricFamily(f"{PREFIX}_tracker_swarms",
                                "Swarms the tracker keeps now.", value=counts.swarms)
