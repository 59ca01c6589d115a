"""The compatibility matrix of one release: its results crossed with inventory attributes,
pure logic over plain data (no database; `hub.compat.gather` reads it).

Each device that tried the release counts once, by its latest counted result:
`installed` is a success; `failed`, `reverted` and `revert-failed` are failures (as the
rollout controller counts them, hub/rollouts/evidence.py). Attributes, from the device's
latest inventory: `os` (os-release id and version, "debian 12"), `model` (the DMI product
name or device-tree model, inventory hardware.product_name), `architecture`, `kernel`,
`package` (a Debian binary package is installed) and `package-version` (at that version).

A *combination* is the set of attribute values that pick exactly the same devices among
those that reported: the 40 packages only the 4 laptops of one model have are one
combination, tested once (the test only sees which devices are in it). Each is tested
against all other reporting devices with the one-sided Fisher exact test and the
Tarone-trimmed Holm correction (hub/compat/fisher.py says why). A combination is
*flagged* when it has at least `min_devices` reporting devices and `min_failures`
failures (a single failure is never a pattern), and its Holm-adjusted p-value is at most
`alpha`.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from hub.compat.fisher import fisher_greater, holm_adjusted, smallest_attainable_p, tarone_kept

DEFAULT_ALPHA = 0.05
DEFAULT_MIN_DEVICES = 3
DEFAULT_MIN_FAILURES = 2
KINDS = ("os", "model", "architecture", "kernel", "package", "package-version")
FACT_KINDS = frozenset(KINDS[:4])
"""Kinds reported for every value, supported or not (few values, all worth seeing);
package kinds only when they have the support to be tested and could reach significance
at all (there are thousands)."""
METHOD = ("one-sided Fisher exact test per combination vs all other reporting devices; "
          "Holm step-down over the hypotheses Tarone's criterion keeps (family-wise "
          "error ≤ alpha)")


class Attribute(NamedTuple):
    """A tuple, so the (kind, value) pairs gathered by the thousand per device hash and
    compare at C speed (hub/compat/gather.py builds plain tuples)."""

    kind: str
    value: str

    def __str__(self) -> str:
        return f"{self.kind}={self.value}"


@dataclass(frozen=True)
class Observation:
    """One device that tried the release: its latest counted outcome and its attributes."""

    device_id: str
    outcome: str
    failed: bool
    attributes: frozenset[tuple[str, str]]
    """(kind, value) pairs: `Attribute`s or plain tuples equal to them."""


@dataclass(frozen=True)
class CompatSettings:
    alpha: float = DEFAULT_ALPHA
    min_devices: int = DEFAULT_MIN_DEVICES
    min_failures: int = DEFAULT_MIN_FAILURES

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha {self.alpha} is outside (0, 1)")
        if self.min_devices < 1 or self.min_failures < 1:
            raise ValueError("min_devices and min_failures must be at least 1")


@dataclass(frozen=True)
class Combination:
    attributes: tuple[Attribute, ...]
    devices: tuple[str, ...]
    """Reporting devices with these attribute values."""
    outcomes: dict[str, int]
    failures: int
    rest_devices: int
    rest_failures: int
    supported: bool
    """Enough devices and failures to be considered at all."""
    p_value: float | None
    """One-sided Fisher; None when there is no rest to compare with."""
    adjusted_p: float | None
    """Holm-adjusted over the Tarone-kept hypotheses; None when not kept (it could not
    reach significance whatever the outcomes were, or lacks support)."""
    flagged: bool

    @property
    def rate(self) -> float:
        return self.failures / len(self.devices) if self.devices else 0.0

    @property
    def rest_rate(self) -> float:
        return self.rest_failures / self.rest_devices if self.rest_devices else 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "attributes": [{"kind": a.kind, "value": a.value} for a in self.attributes],
            "devices": len(self.devices), "failures": self.failures,
            "failure_rate": round(self.rate, 4), "outcomes": dict(self.outcomes),
            "rest_devices": self.rest_devices, "rest_failures": self.rest_failures,
            "rest_failure_rate": round(self.rest_rate, 4), "supported": self.supported,
            "p_value": self.p_value, "adjusted_p": self.adjusted_p, "flagged": self.flagged,
            "device_ids": list(self.devices),
        }


@dataclass(frozen=True)
class CompatMatrix:
    settings: CompatSettings
    reporting: int
    failures: int
    outcomes: dict[str, int]
    combinations: tuple[Combination, ...]
    """Flagged first, then by p-value."""
    tested: int
    """Hypotheses Tarone's criterion kept: the Holm correction's m."""
    without_inventory: tuple[str, ...] = field(default=())
    """Devices that reported a result but whose inventory the hub lacks (not tested)."""

    @property
    def flagged(self) -> tuple[Combination, ...]:
        return tuple(c for c in self.combinations if c.flagged)


def analyse(observations: Sequence[Observation], settings: CompatSettings = CompatSettings(),
            without_inventory: Iterable[str] = ()) -> CompatMatrix:
    total = len(observations)
    failures_total = sum(o.failed for o in observations)
    outcomes: dict[str, int] = defaultdict(int)
    for observation in observations:
        outcomes[observation.outcome] += 1
    # Count first (Counter runs in C), and build device lists only for the values that
    # could matter: the facts, and package values that have the support and could reach
    # significance at all (a smallest attainable p-value above alpha can never pass
    # Tarone's criterion, whatever K). A fleet of 1,000 devices x 3,000 packages has 6
    # million (device, value) pairs; most values are on nearly every device.
    counts: Counter[tuple[str, str]] = Counter()
    failing: Counter[tuple[str, str]] = Counter()
    for observation in observations:
        counts.update(observation.attributes)
        if observation.failed:
            failing.update(observation.attributes)
    wanted = {
        key for key, count in counts.items()
        if key[0] in FACT_KINDS or (
            count >= settings.min_devices and failing[key] >= settings.min_failures
            and count < total
            and smallest_attainable_p(count, failures_total, total) <= settings.alpha)
    }
    members: dict[tuple[str, str], list[int]] = defaultdict(list)
    for index, observation in enumerate(observations):
        for key in observation.attributes & wanted:
            members[key].append(index)

    grouped: dict[tuple[int, ...], list[Attribute]] = defaultdict(list)
    for key, member_list in members.items():
        grouped[tuple(member_list)].append(Attribute(*key))

    drafts = []
    for indices, attributes in grouped.items():
        failures = sum(observations[i].failed for i in indices)
        supported = len(indices) >= settings.min_devices and failures >= settings.min_failures
        if not supported and not any(a.kind in FACT_KINDS for a in attributes):
            continue
        drafts.append((indices, sorted(attributes, key=_attribute_order), failures, supported))

    # Tarone over the supported hypotheses that have a rest to compare with.
    candidates = [d for d in drafts if d[3] and len(d[0]) < total]
    smallest = [smallest_attainable_p(len(d[0]), failures_total, total) for d in candidates]
    kept = tarone_kept(smallest, settings.alpha)
    kept_keys = [candidates[i][0] for i in kept]
    raw = {d[0]: _p_value(observations, d[0], d[2], failures_total, total) for d in drafts}
    adjusted = dict(zip(kept_keys, holm_adjusted([raw[k] or 1.0 for k in kept_keys]),
                        strict=True))

    combinations = []
    for indices, attributes, failures, supported in drafts:
        count: dict[str, int] = defaultdict(int)
        for i in indices:
            count[observations[i].outcome] += 1
        adjusted_p = adjusted.get(indices)
        combinations.append(Combination(
            attributes=tuple(attributes),
            devices=tuple(observations[i].device_id for i in indices),
            outcomes=dict(sorted(count.items())), failures=failures,
            rest_devices=total - len(indices), rest_failures=failures_total - failures,
            supported=supported, p_value=raw[indices], adjusted_p=adjusted_p,
            flagged=adjusted_p is not None and adjusted_p <= settings.alpha,
        ))
    combinations.sort(key=lambda c: (not c.flagged, 1.0 if c.p_value is None else c.p_value,
                                     _attribute_order(c.attributes[0])))
    return CompatMatrix(settings, total, failures_total, dict(sorted(outcomes.items())),
                        tuple(combinations), len(kept_keys), tuple(sorted(without_inventory)))


def _p_value(observations: Sequence[Observation], indices: tuple[int, ...], failures: int,
             failures_total: int, total: int) -> float | None:
    devices_in = len(indices)
    if devices_in >= total:
        return None
    return fisher_greater(failures, devices_in - failures, failures_total - failures,
                          total - devices_in - (failures_total - failures))


def _attribute_order(attribute: Attribute) -> tuple[int, str]:
    return KINDS.index(attribute.kind), attribute.value
