"""The console's compliance charts end at the moment of the request: the last point is
the facts' own time (a whole second), so a release installed a moment ago counts "now".
A request time with a fraction of a second once put the last step past the facts' time
and dropped it, and the figure shown as "now" was the share one step (hours) earlier."""

from datetime import UTC, datetime, timedelta

from agent.wire.rollout import RolloutEntry
from hub.compliance.facts import (
    ComplianceFacts,
    DeviceFact,
    ReleaseFact,
    ResultFact,
    RolloutFact,
)
from hub.console.pages import compliance

NOW = datetime(2026, 12, 2, 18, 16, 40, 734512, tzinfo=UTC)
RELEASE = ReleaseFact("releases/app/1.0.0/app.tar", "app", "1.0.0", "critical",
                      "application", NOW - timedelta(seconds=20))


def test_the_last_point_is_the_request_time_and_counts_a_result_seconds_old(monkeypatch):
    def gather_facts(database, hub, now):
        return ComplianceFacts(
            hub=hub, now=now.replace(microsecond=0), releases=[RELEASE],
            rollouts={RELEASE.target: [RolloutFact("lab", RolloutEntry(
                release=RELEASE.target, started_at=RELEASE.published_at.isoformat()))]},
            devices=[DeviceFact("dev-a", "a", "lab", "hq", NOW)],
            results=[ResultFact("dev-a", RELEASE.target, "installed", "",
                                NOW - timedelta(seconds=5))],
            policies={}, exceptions=[])

    monkeypatch.setattr(compliance, "gather_facts", gather_facts)
    points = compliance.group_shares(None, days=7, now=NOW)["lab"]  # type: ignore[arg-type]
    assert len(points) == compliance.POINTS + 1
    assert points[-1] == (NOW.replace(microsecond=0), 1.0)
    assert all(share is None for _, share in points[:-1])  # published 20 s ago
