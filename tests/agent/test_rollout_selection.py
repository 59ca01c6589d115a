"""Which releases a device takes: only signed ones, active, in stage, never a downgrade;
stage membership by bucket and pilots; the staged rollout document's validation."""

import json
import re

import pytest

from agent.errors import WireFormatError
from agent.rollout_selection import (
    held_releases,
    in_current_stage,
    joining_stage,
    rollout_bucket,
    select_releases,
)
from agent.wire.release import ReleaseInfo, ReleaseManifest, TorrentRef
from agent.wire.rollout import GroupRollouts, RolloutEntry, RolloutState

DEVICE = "dev-0123456789abcdef0123"


def info(version, replaces=()):
    """A release of `app`; with `replaces`, a rollback release naming those versions."""
    return ReleaseInfo(
        manifest=ReleaseManifest(
            name="app", version=version, severity="low", category="application",
            rollback=bool(replaces), replaces=list(replaces),
            install={"type": "file-tree", "root": "/opt/app"},
        ),
        payload_name="app.tar",
        torrent=TorrentRef(path="x.torrent", info_hash_v1="0" * 40, info_hash_v2="0" * 64),
        published_at="2026-11-25T00:00:00+00:00",
    )


def doc(*entries):
    return GroupRollouts(group="g", rollouts=[
        RolloutEntry(release=path, state=state, stage_percent=percent,
                     started_at="2026-11-25T00:00:00+00:00")
        for path, state, percent in entries
    ])


def test_bucket_is_stable_and_spread():
    buckets = [rollout_bucket(f"dev-{i:020x}", "releases/a") for i in range(2000)]
    assert buckets[:5] == [rollout_bucket(f"dev-{i:020x}", "releases/a") for i in range(5)]
    assert all(0 <= b < 100 for b in buckets)
    share_below_25 = sum(b < 25 for b in buckets) / len(buckets)
    assert 0.21 < share_below_25 < 0.29


def test_newest_active_release_is_chosen():
    releases = {"releases/app/1": info("1.0"), "releases/app/2": info("2.0")}
    chosen, _ = select_releases(
        doc(("releases/app/1", RolloutState.ACTIVE, 100),
            ("releases/app/2", RolloutState.ACTIVE, 100)),
        DEVICE, releases, {},
    )
    assert [c.release for c in chosen] == ["releases/app/2"]


def test_unsigned_paused_and_out_of_stage_rollouts_are_skipped():
    releases = {"releases/app/1": info("1.0")}
    chosen, skipped = select_releases(
        doc(("releases/evil", RolloutState.ACTIVE, 100),
            ("releases/app/1", RolloutState.PAUSED, 100)),
        DEVICE, releases, {},
    )
    assert chosen == []
    assert {s.why for s in skipped} == {"not a signed release", "rollout is paused"}
    chosen, skipped = select_releases(
        doc(("releases/app/1", RolloutState.ACTIVE, 0)), DEVICE, releases, {})
    assert chosen == [] and "not in stage" in skipped[0].why


def test_downgrade_refused_unless_signed_as_rollback_of_the_installed_version():
    chosen, skipped = select_releases(
        doc(("releases/app/1", RolloutState.ACTIVE, 100)), DEVICE, {"releases/app/1": info("1.0")},
        {"app": "2.0"},
    )
    assert chosen == [] and "downgrade" in skipped[0].why
    chosen, _ = select_releases(
        doc(("releases/app/1", RolloutState.ACTIVE, 100)), DEVICE,
        {"releases/app/1": info("1.0", replaces=["2.0"])}, {"app": "2.0"},
    )
    assert [c.release for c in chosen] == ["releases/app/1"]


def test_an_old_rollback_release_cannot_take_a_device_back_from_a_later_version():
    chosen, skipped = select_releases(
        doc(("releases/app/1", RolloutState.ACTIVE, 100)), DEVICE,
        {"releases/app/1": info("1.0", replaces=["2.0"])}, {"app": "3.0"},
    )
    assert chosen == []
    assert skipped[0].why == ("rollback release 1.0 may replace only 2.0, "
                              "not the installed 3.0")


def test_installed_version_is_not_taken_again():
    chosen, _ = select_releases(
        doc(("releases/app/1", RolloutState.ACTIVE, 100)), DEVICE, {"releases/app/1": info("1.0")},
        {"app": "1.0"},
    )
    assert chosen == []


def staged(stages, current, pilots=(), pilot_groups=(), state=RolloutState.ACTIVE):
    return RolloutEntry(release="releases/app/1", state=state, stages=list(stages),
                        current_stage=current, stage_percent=stages[current],
                        pilot_devices=list(pilots), pilot_groups=list(pilot_groups),
                        started_at="2026-11-25T00:00:00+00:00")


def test_stage_membership_only_grows_as_the_rollout_widens():
    devices = [f"dev-{i:020x}" for i in range(1000)]
    stages = (2, 25, 100)
    members = [
        {d for d in devices if in_current_stage(staged(stages, k), d, "g")} for k in range(3)
    ]
    assert members[0] < members[1] < members[2] == set(devices)
    assert 5 <= len(members[0]) <= 40 and 200 <= len(members[1]) <= 300
    for device in devices:
        joined = joining_stage(staged(stages, 0), device, "g")
        assert all((device in members[k]) == (k >= joined) for k in range(3))


def test_pilot_devices_and_pilot_groups_are_in_the_first_stage_even_at_zero_percent():
    entry = staged((0, 50, 100), 0, pilots=[DEVICE], pilot_groups=["canary"])
    assert in_current_stage(entry, DEVICE, "g")
    assert in_current_stage(entry, "dev-ffffffffffffffffffff", "canary")
    assert not in_current_stage(entry, "dev-ffffffffffffffffffff", "g")
    document = GroupRollouts(group="canary", rollouts=[entry])
    chosen, _ = select_releases(document, "dev-ffffffffffffffffffff",
                                {"releases/app/1": info("1.0")}, {})
    assert [c.release for c in chosen] == ["releases/app/1"]


def test_halted_rollout_is_skipped_even_by_its_pilots():
    entry = staged((0, 100), 0, pilots=[DEVICE], state=RolloutState.HALTED)
    chosen, skipped = select_releases(GroupRollouts(group="g", rollouts=[entry]), DEVICE,
                                      {"releases/app/1": info("1.0")}, {})
    assert chosen == [] and skipped[0].why == "rollout is halted"


def test_a_document_from_before_stages_reads_as_one_stage():
    old = (b'{"group":"g","rollouts":[{"release":"releases/app/1","stage_percent":40,'
           b'"started_at":"2026-11-25T00:00:00+00:00","state":"active"}]}')
    [entry] = GroupRollouts.from_bytes(old, "rollouts/g.json").rollouts
    assert entry.stages == [40] and entry.current_stage == 0 and entry.pilot_devices == []


@pytest.mark.parametrize(("fields", "message"), [
    ({"stages": [2, 25, 25], "stage_percent": 2}, "stages must increase"),
    ({"stages": [2, 120], "stage_percent": 2}, "outside 0..100"),
    ({"stages": [2, 25], "stage_percent": 25}, "stage_percent 25 is not stage 0's 2%"),
    ({"stages": [2, 25], "current_stage": 2, "stage_percent": 25}, "only 2 stage(s)"),
    ({"pilot_devices": ["../etc"]}, "is not a device id"),
    ({"pilot_groups": ["Not A Group"]}, "is not a group name"),
])
def test_malformed_staged_documents_are_refused_with_the_problem_named(fields, message):
    entry = {"release": "releases/app/1", "started_at": "2026-11-25T00:00:00+00:00", **fields}
    data = json.dumps({"group": "g", "rollouts": [entry]}).encode()
    with pytest.raises(WireFormatError, match=re.escape(message)):
        GroupRollouts.from_bytes(data, "rollouts/g.json")


def test_downloaded_releases_are_held_when_their_rollout_stops_or_leaves_the_device():
    active = staged((0, 100), 1)
    halted = RolloutEntry(**{**active.model_dump(), "release": "releases/app/2",
                             "state": RolloutState.HALTED, "reason": "2 failures"})
    narrow = RolloutEntry(**{**staged((0, 100), 0).model_dump(), "release": "releases/app/3"})
    document = GroupRollouts(group="g", rollouts=[active, halted, narrow])
    held = held_releases(document, DEVICE, ["releases/app/1", "releases/app/2",
                                            "releases/app/3", "releases/app/4"])
    assert held == {
        "releases/app/2": "rollout is halted: 2 failures",
        "releases/app/3": "not in stage (0%)",
        "releases/app/4": "no rollout of it for this device's group",
    }
    assert held_releases(None, DEVICE, ["releases/app/1"]) == {
        "releases/app/1": "no rollout of it for this device's group"}


def test_a_held_device_neither_starts_nor_goes_on_with_the_release_the_others_do():
    other = "dev-fedcba9876543210fedc"
    entry = RolloutEntry(release="releases/app/1", started_at="2026-11-25T00:00:00+00:00",
                         held_devices=[DEVICE])
    document = GroupRollouts(group="g", rollouts=[entry])
    releases = {"releases/app/1": info("1.0")}
    chosen, skipped = select_releases(document, DEVICE, releases, {})
    assert chosen == [] and "held for this device" in skipped[0].why
    assert [c.release for c in select_releases(document, other, releases, {})[0]] == [
        "releases/app/1"]
    assert not in_current_stage(entry, DEVICE, "g") and in_current_stage(entry, other, "g")
    assert "held for this device" in held_releases(document, DEVICE, ["releases/app/1"])[
        "releases/app/1"]
    assert held_releases(document, other, ["releases/app/1"]) == {}


def test_documents_without_holds_carry_no_held_devices_key_for_agents_that_predate_it():
    entry = RolloutEntry(release="releases/app/1", started_at="2026-11-25T00:00:00+00:00")
    assert b"held_devices" not in GroupRollouts(group="g", rollouts=[entry]).to_bytes()
    held = entry.model_copy(update={"held_devices": [DEVICE]})
    data = GroupRollouts(group="g", rollouts=[held]).to_bytes()
    assert GroupRollouts.from_bytes(data, "rollouts/g.json").rollouts[0].held_devices == [DEVICE]
    bad = json.dumps({"group": "g", "rollouts": [{**json.loads(data)["rollouts"][0],
                                                  "held_devices": ["../x"]}]}).encode()
    with pytest.raises(WireFormatError, match="held device '../x' is not a device id"):
        GroupRollouts.from_bytes(bad, "rollouts/g.json")


def test_a_device_is_a_control_of_active_signal_releases_whose_stage_leaves_it_out():
    from agent.rollout_selection import control_releases
    from agent.wire.release import SignalsSpec

    spec = SignalsSpec(processes=["app"], window_seconds=60)
    with_signals = info("2.0").model_copy(update={"manifest": info("2.0").manifest.model_copy(
        update={"signals": spec})})
    releases = {"releases/app/2": with_signals, "releases/app/1": info("1.0")}
    bucket = rollout_bucket(DEVICE, "releases/app/2")
    below, above = int(bucket), int(bucket) + 1  # a stage at `below` % leaves it out
    assert control_releases(doc(("releases/app/2", RolloutState.ACTIVE, below),
                                ("releases/app/1", RolloutState.ACTIVE, 0)),
                            DEVICE, releases) == {"releases/app/2": spec}
    assert control_releases(doc(("releases/app/2", RolloutState.ACTIVE, above)),
                            DEVICE, releases) == {}  # in the stage: treatment's side
    assert control_releases(doc(("releases/app/2", RolloutState.PAUSED, below)),
                            DEVICE, releases) == {}
