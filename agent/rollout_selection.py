"""Which releases this device should deploy now — pure logic over signed data.

A device decides its own stage membership from a stable hash of (device id, release), so
membership only grows as a stage widens and the metadata needs no per-device list.
Explicit pilot devices and every device of a pilot group are in every stage, the first
included. The hub computes membership with these same functions to count each stage.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from packaging.version import Version

from agent.wire.release import ReleaseInfo, SignalsSpec
from agent.wire.rollout import GroupRollouts, RolloutEntry, RolloutState


def rollout_bucket(device_id: str, release: str) -> float:
    """A number in [0, 100), uniform over devices, fixed for a (device, release) pair."""
    digest = hashlib.sha256(f"{device_id}\n{release}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * 100


def is_pilot(entry: RolloutEntry, device_id: str, group: str) -> bool:
    return device_id in entry.pilot_devices or group in entry.pilot_groups


def joining_stage(
    entry: RolloutEntry, device_id: str, group: str, bucket: float | None = None
) -> int | None:
    """The index of the first stage that includes this device, or None if none does.

    Pilots join at stage 0; any other device at the first stage whose percentage is above
    its bucket. Because stages increase, a device once in stays in. `bucket` spares the
    hash when the caller has it (the hub counts every device of a group, often).
    """
    if is_pilot(entry, device_id, group):
        return 0
    if bucket is None:
        bucket = rollout_bucket(device_id, entry.release)
    return next((index for index, percent in enumerate(entry.stages) if bucket < percent), None)


def is_held(entry: RolloutEntry, device_id: str) -> bool:
    """The hub holds this release for this device (its combination of OS, model or
    packages fails it significantly more often; `RolloutEntry.held_devices`)."""
    return device_id in entry.held_devices


HELD = "held for this device: its OS, model or packages fail this release more often"


def in_current_stage(entry: RolloutEntry, device_id: str, group: str) -> bool:
    """In a stage the rollout has reached, and not held for this device."""
    if is_held(entry, device_id):
        return False
    stage = joining_stage(entry, device_id, group)
    return stage is not None and stage <= entry.current_stage


@dataclass(frozen=True)
class Candidate:
    release: str
    info: ReleaseInfo


@dataclass(frozen=True)
class Skipped:
    release: str
    why: str


def select_releases(
    document: GroupRollouts,
    device_id: str,
    releases: dict[str, ReleaseInfo],
    installed: dict[str, str],
) -> tuple[list[Candidate], list[Skipped]]:
    """Newest eligible release per name that is not installed yet.

    The document is the one of this device's own group, so `document.group` is the group
    that pilot groups are matched against.

    `releases` maps release target paths to their admin-signed info (a rollout entry
    without one is skipped: the rollout role cannot create releases). `installed` maps
    release names to installed versions; an older version is a downgrade and is taken only
    from a rollback release that names the installed version in its signed `replaces`
    (`ReleaseManifest.refuses_to_replace`, asked again at every step up to installing).
    """
    best: dict[str, Candidate] = {}
    skipped: list[Skipped] = []
    for entry in document.rollouts:
        info = releases.get(entry.release)
        if info is None:
            skipped.append(Skipped(entry.release, "not a signed release"))
            continue
        if entry.state is not RolloutState.ACTIVE:
            skipped.append(Skipped(entry.release, f"rollout is {entry.state}"))
            continue
        if is_held(entry, device_id):
            skipped.append(Skipped(entry.release, HELD))
            continue
        if not in_current_stage(entry, device_id, document.group):
            skipped.append(Skipped(entry.release, f"not in stage ({entry.stage_percent}%)"))
            continue
        manifest = info.manifest
        current = installed.get(manifest.name)
        if current is not None and Version(current) == manifest.parsed_version:
            continue
        refusal = manifest.refuses_to_replace(current)
        if refusal is not None:
            skipped.append(Skipped(entry.release, refusal))
            continue
        previous = best.get(manifest.name)
        if previous is None or manifest.parsed_version > previous.info.manifest.parsed_version:
            best[manifest.name] = Candidate(entry.release, info)
    return sorted(best.values(), key=lambda c: c.release), skipped


def held_releases(
    document: GroupRollouts | None, device_id: str, releases: Iterable[str]
) -> dict[str, str]:
    """Which of `releases` this device must not go on with, even if it has downloaded them
    (waiting for its maintenance window, say): no signed rollout of its group lists them
    any more, their rollout is paused or halted, or it no longer includes this device.
    Release target path → why."""
    entries = {entry.release: entry for entry in document.rollouts} if document else {}
    held: dict[str, str] = {}
    for release in releases:
        entry = entries.get(release)
        if entry is None:
            held[release] = "no rollout of it for this device's group"
        elif entry.state is not RolloutState.ACTIVE:
            held[release] = f"rollout is {entry.state}" + (
                f": {entry.reason}" if entry.reason else "")
        elif is_held(entry, device_id):
            held[release] = HELD
        elif document is not None and not in_current_stage(entry, device_id, document.group):
            held[release] = f"not in stage ({entry.stage_percent}%)"
    return held


def control_releases(
    document: GroupRollouts, device_id: str, releases: dict[str, ReleaseInfo],
) -> dict[str, SignalsSpec]:
    """The releases this device is a concurrent control of, with their `[signals]`: an
    active rollout of a release declaring signals, whose current stage does not include
    this device (nor holds it). The device measures control windows for these
    (agent/control_signals.py); the hub compares them with the updated devices'."""
    wanted: dict[str, SignalsSpec] = {}
    for entry in document.rollouts:
        info = releases.get(entry.release)
        if info is None or info.manifest.signals is None:
            continue
        if entry.state is not RolloutState.ACTIVE or is_held(entry, device_id):
            continue
        if not in_current_stage(entry, device_id, document.group):
            wanted[entry.release] = info.manifest.signals
    return wanted
