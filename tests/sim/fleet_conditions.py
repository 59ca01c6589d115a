"""The make-up of the realistic fleet (tests/sim/realistic_fleet.py): its groups and the
policies their admins wrote, the staging an admin picks for a critical release, and
what goes wrong on which device.

Groups are sites in five time zones. Each policy is the TOML an admin would publish
with `meisitong-hub policy set` (README "Policies"): maintenance windows in the site's
own zone, a jitter so a site does not start at once, and deadlines by severity (critical
72 h). Every group has a window at least once a day, so a device whose stage opens
within the first day or so can meet a 72 h deadline inside a window; the release is
published on a Friday, so the weekend windows and the US switch to summer time
(Sunday 8 March 2026) fall inside its deadline.

Conditions are drawn from one seed, so a run can be repeated exactly:
- `offline_share` of the devices went offline one to six days before publication; half
  of them come back inside the deadline (early enough to find a window), the rest only
  after the report;
- `failure_share` install, fail their health check and revert;
- `not_ready_share` lack the disk space to snapshot and install (nothing is changed).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hub.rollouts.rules import RolloutPlan, RolloutRules

PUBLISHED = datetime(2026, 3, 6, 8, 0, tzinfo=UTC)
"""Friday 09:00 in Berlin: the vendor's critical fix is out, the admin publishes it."""
HOUR = 3600.0
DAY = 24 * HOUR
DEADLINE_HOURS = 72

_DEADLINES = f"""
[deadline_hours]
critical = {DEADLINE_HOURS}
important = 168
"""


@dataclass(frozen=True)
class SiteGroup:
    name: str
    share: float
    """Of the whole fleet."""
    policy: str
    """The policy's TOML, as the admin publishes it."""


GROUPS: tuple[SiteGroup, ...] = (
    SiteGroup("office-berlin", 0.29, """timezone = "Europe/Berlin"
jitter_minutes = 30
[[windows]]
name = "lunch"
when = "Mon-Fri 12:00-13:00"
[[windows]]
name = "night"
when = "Mon-Fri 20:00-06:00"
[[windows]]
name = "weekend"
when = "Sat,Sun 00:00-24:00"
""" + _DEADLINES),
    SiteGroup("office-newyork", 0.25, """timezone = "America/New_York"
jitter_minutes = 45
[[windows]]
name = "evening"
when = "Daily 21:00-03:00"
""" + _DEADLINES),
    SiteGroup("stores-tokyo", 0.20, """timezone = "Asia/Tokyo"
jitter_minutes = 60
[[windows]]
name = "after-closing"
when = "Daily 01:00-05:00"
""" + _DEADLINES),
    SiteGroup("kiosks-sydney", 0.10, """timezone = "Australia/Sydney"
jitter_minutes = 30
[[windows]]
name = "night"
when = "Mon-Fri 23:00-05:00"
[[windows]]
name = "weekend"
when = "Sat,Sun 00:00-07:00"
""" + _DEADLINES),
    SiteGroup("servers-dc", 0.15, """timezone = "UTC"
jitter_minutes = 20
[[windows]]
name = "maintenance"
when = ["Mon-Fri 02:00-04:00", "Sat,Sun 01:00-07:00"]
[[windows]]
name = "ops-hours"
when = "Mon-Fri 14:00-15:00"
timezone = "America/Chicago"
""" + _DEADLINES),
    SiteGroup("it-pilot", 0.01, """# IT's own machines: any time, they are the canaries.
timezone = "Europe/Berlin"
""" + _DEADLINES),
)
PILOT_GROUP = "it-pilot"
"""Pilots of the first site's rollout: every device of it is in that rollout's first stage."""


def admin_plan(group: str, size: int) -> RolloutPlan:
    """The staging an admin picks for a critical release, per group, from the group's
    size (`devices list`): a first stage of at least three times the results the gate
    needs (some of its devices will be offline or not ready, and a stage waits for
    min(N, members) results), then a quarter, then everyone. Each stage soaks an hour.
    The success threshold is 90 %: for a critical hole, a release that reverts itself
    on a few devices must not stop the fix reaching the rest, while a broken one (50 %
    failing) still halts at once on the sequential test. With the default 98 %, a 2 %
    revert rate halted 3 of the 5 group rollouts in each of seeds 0 and 1 (2,000
    devices): the stage gate judges every result again as the final stage fills, and a
    rate at the threshold dips below it."""
    min_results = 20 if size >= 400 else max(3, size // 20)
    first = next((p for p in (2, 5, 10, 20) if size * p / 100 >= 3 * min_results), 20)
    rules = RolloutRules(min_results=min_results, soak_seconds=3600, success_threshold=0.90)
    pilots = (PILOT_GROUP,) if group == GROUPS[0].name else ()
    return RolloutPlan(stages=(first, 25, 100), pilot_groups=pilots, rules=rules)


@dataclass(frozen=True)
class FleetMakeup:
    devices: int = 10_000
    offline_share: float = 0.05
    failure_share: float = 0.02
    not_ready_share: float = 0.003
    seed: int = 0


@dataclass
class DeviceConditions:
    device_id: str
    key: Ed25519PrivateKey
    group: str
    fails: bool = False
    not_ready: bool = False
    offline_from: float | None = None
    """Simulated seconds (negative: before publication) of its last contact before it
    went offline; None: online throughout."""
    back_at: float | None = None
    """When it comes back (seconds after publication); None: not before the report."""
    phase: float = 0.0
    """Where in its poll and heartbeat intervals it sits, as a fraction."""
    download_seconds: float = 60.0
    install_seconds: float = 600.0

    def online(self, at: float) -> bool:
        if self.offline_from is None or at < self.offline_from:
            return True
        return self.back_at is not None and at >= self.back_at


def group_sizes(devices: int) -> dict[str, int]:
    sizes = {group.name: math.floor(devices * group.share) for group in GROUPS}
    sizes[GROUPS[0].name] += devices - sum(sizes.values())
    return sizes


def draw_fleet(makeup: FleetMakeup) -> list[DeviceConditions]:
    """Every device with its group and what will happen to it, from `makeup.seed`."""
    rng = random.Random(makeup.seed)
    fleet: list[DeviceConditions] = []
    for group, size in group_sizes(makeup.devices).items():
        for _ in range(size):
            device = DeviceConditions(
                device_id=f"dev-{rng.getrandbits(80):020x}",
                key=Ed25519PrivateKey.generate(),
                group=group,
                phase=rng.random(),
                download_seconds=rng.uniform(30, 600),
                install_seconds=rng.uniform(5, 30) * 60,
            )
            draw = rng.random()
            if draw < makeup.offline_share:
                device.offline_from = -round(rng.uniform(1, 6) * DAY)
                if rng.random() < 0.5:
                    device.back_at = rng.uniform(6, 40) * HOUR
            elif draw < makeup.offline_share + makeup.failure_share:
                device.fails = True
            elif draw < makeup.offline_share + makeup.failure_share + makeup.not_ready_share:
                device.not_ready = True
            fleet.append(device)
    return fleet
