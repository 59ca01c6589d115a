"""Which releases a device takes: only signed ones, active, in stage, never a downgrade."""

from agent.rollout_selection import rollout_bucket, select_releases
from agent.wire.release import ReleaseInfo, ReleaseManifest, TorrentRef
from agent.wire.rollout import GroupRollouts, RolloutEntry, RolloutState

DEVICE = "dev-0123456789abcdef0123"


def info(version, rollback=False):
    return ReleaseInfo(
        manifest=ReleaseManifest(
            name="app", version=version, severity="low", category="application",
            rollback=rollback, install={"type": "file-tree", "root": "/opt/app"},
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


def test_downgrade_refused_unless_signed_as_rollback():
    chosen, skipped = select_releases(
        doc(("releases/app/1", RolloutState.ACTIVE, 100)), DEVICE, {"releases/app/1": info("1.0")},
        {"app": "2.0"},
    )
    assert chosen == [] and "downgrade" in skipped[0].why
    chosen, _ = select_releases(
        doc(("releases/app/1", RolloutState.ACTIVE, 100)), DEVICE,
        {"releases/app/1": info("1.0", rollback=True)}, {"app": "2.0"},
    )
    assert [c.release for c in chosen] == ["releases/app/1"]


def test_installed_version_is_not_taken_again():
    chosen, _ = select_releases(
        doc(("releases/app/1", RolloutState.ACTIVE, 100)), DEVICE, {"releases/app/1": info("1.0")},
        {"app": "1.0"},
    )
    assert chosen == []
