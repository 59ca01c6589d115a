"""The journal keeps the lifecycle's rules and writes results atomically with states."""

import pytest

from agent.errors import IllegalTransitionError
from agent.journal import Journal
from agent.lifecycle import (
    BEFORE_INSTALL,
    CHANGES_DEVICE,
    RECOVERY,
    TERMINAL,
    TRANSITIONS,
    State,
)

RELEASE = "releases/demo/1.0/demo.tar"


@pytest.fixture
def journal(tmp_path):
    journal = Journal(tmp_path / "journal.db")
    yield journal
    journal.close()


def test_every_non_terminal_state_recovers_to_a_state_it_may_reach():
    for state in State:
        if state in TERMINAL:
            continue
        resumed = RECOVERY[state]
        assert resumed == state or resumed in TRANSITIONS[state], state


def test_illegal_transition_is_refused_and_nothing_written(journal):
    journal.create(RELEASE, "demo", "1.0")
    with pytest.raises(IllegalTransitionError):
        journal.transition(RELEASE, State.COMMITTED)
    assert journal.get(RELEASE).state is State.PENDING
    assert len(journal.transitions(RELEASE)) == 1


def test_terminal_state_and_result_land_together(journal):
    journal.create(RELEASE, "demo", "1.0")
    for state in (State.SCHEDULED, State.DOWNLOADING, State.VERIFIED, State.SNAPSHOTTING,
                  State.INSTALLING, State.CHECKING):
        journal.transition(RELEASE, state)
    journal.transition(RELEASE, State.COMMITTED, result=("r1", b"{}"), installed=("demo", "1.0"))
    assert journal.undelivered() == [("r1", b"{}")]
    assert journal.installed_version("demo") == "1.0"
    journal.mark_delivered("r1")
    assert journal.undelivered() == []
    assert journal.outbox_counts() == (1, 0)


def test_failed_transition_leaves_no_result_behind(journal):
    journal.create(RELEASE, "demo", "1.0")
    with pytest.raises(IllegalTransitionError):
        journal.transition(RELEASE, State.REVERTED, result=("r1", b"{}"))
    assert journal.undelivered() == []


def test_journal_survives_reopen(tmp_path):
    first = Journal(tmp_path / "j.db")
    first.create(RELEASE, "demo", "1.0", {"target": {"length": 1}})
    first.transition(RELEASE, State.SCHEDULED, detail={"x": 1})
    first.close()
    again = Journal(tmp_path / "j.db")
    deployment = again.get(RELEASE)
    assert deployment.state is State.SCHEDULED
    assert deployment.detail.target == {"length": 1}
    assert deployment.detail.unknown == {"x": 1}  # a key this version does not know
    assert (tmp_path / "j.db").stat().st_mode & 0o777 == 0o600
    again.close()


def test_finished_payloads_are_pruned_once_unseeded_a_failed_revert_once_cleared(tmp_path):
    from agent.deployment_files import deployment_key, prune_finished_downloads
    from agent.state_dir import StateDir
    from agent.wire.release import ReleaseInfo, ReleaseManifest, TorrentRef

    def custom(info_hash):
        return ReleaseInfo(
            manifest=ReleaseManifest(name="a", version="1", severity="low", category="app",
                                     install={"type": "file-tree", "root": "/opt/a"}),
            payload_name="a.tar", published_at="2026-11-25T00:00:00+00:00",
            torrent=TorrentRef(path="t", info_hash_v1=info_hash, info_hash_v2="0" * 64),
        ).to_custom()

    state = StateDir(tmp_path / "state")
    state.create()
    journal = Journal(state.journal)
    cases = (("releases/a/1/a.tar", State.FAILED, "a" * 40),    # finished, not seeded
             ("releases/b/1/b.tar", State.FAILED, "b" * 40),    # finished, still seeded
             ("releases/c/1/c.tar", None, "c" * 40),            # still running
             ("releases/d/1/d.tar", State.REVERT_FAILED, "d" * 40),  # for the admin
             ("releases/e/1/e.tar", State.REVERT_FAILED, "e" * 40))  # cleared below
    for release, final, info_hash in cases:
        journal.create(release, "a", "1", {"target": {"custom": custom(info_hash)}})
        if final is State.REVERT_FAILED:
            for step in (State.SCHEDULED, State.DOWNLOADING, State.VERIFIED,
                         State.SNAPSHOTTING, State.INSTALLING, State.REVERTING):
                journal.transition(release, step)
        if final:
            journal.transition(release, final)
        (state.downloads / deployment_key(release)).mkdir()
        (state.downloads / deployment_key(release) / "payload").write_bytes(b"x")
    journal.clear("releases/e/1/e.tar", by="ops")
    pruned = prune_finished_downloads(state, journal.deployments(), open_torrents={"b" * 40})
    assert pruned == ["releases/a/1/a.tar", "releases/e/1/e.tar"]
    assert (state.downloads / deployment_key("releases/d/1/d.tar")).exists()
    assert not (state.downloads / deployment_key("releases/a/1/a.tar")).exists()
    assert (state.downloads / deployment_key("releases/b/1/b.tar")).exists()
    assert (state.downloads / deployment_key("releases/c/1/c.tar")).exists()
    journal.close()


def test_superseded_ends_any_step_before_installing_and_none_after_the_device_changed():
    for state in State:
        allowed = State.SUPERSEDED in TRANSITIONS[state]
        assert allowed == (state in BEFORE_INSTALL), state
    assert not BEFORE_INSTALL & CHANGES_DEVICE
    assert State.SUPERSEDED in TERMINAL


def test_a_superseded_deployment_lands_with_its_result_and_changes_nothing_installed(journal):
    journal.create(RELEASE, "demo", "1.0")
    journal.transition(RELEASE, State.SCHEDULED)
    journal.transition(RELEASE, State.DOWNLOADING)
    journal.transition(RELEASE, State.VERIFIED)
    journal.transition(RELEASE, State.SUPERSEDED, "superseded, nothing changed: newer",
                       result=("r1", b"{}"))
    assert journal.get(RELEASE).finished
    assert journal.undelivered() == [("r1", b"{}")]
    assert journal.installed_version("demo") is None
    with pytest.raises(IllegalTransitionError):
        journal.transition(RELEASE, State.SNAPSHOTTING)


def test_clearing_one_failed_revert_keeps_the_alert_while_another_still_blocks(tmp_path):
    from click.testing import CliRunner

    from agent.cli import main as agent_cli
    from agent.state_dir import StateDir

    state = StateDir(tmp_path / "state")
    state.create()
    config = tmp_path / "agent.toml"
    config.write_text(f'[agent]\nstate_dir = "{state.root}"\n')
    journal = Journal(state.journal)
    first, second = "releases/a/1/a.tar", "releases/b/1/b.tar"
    for release in (first, second):
        journal.create(release, "a", "1")
        for next_state in (State.SCHEDULED, State.DOWNLOADING, State.VERIFIED,
                           State.SNAPSHOTTING, State.INSTALLING, State.REVERTING):
            journal.transition(release, next_state)
        journal.transition(release, State.REVERT_FAILED, "restore failed")
    alert = journal.status()["alert"][0]  # written with each revert-failed, from all
    assert f"revert of {first} failed: restore failed" in alert and second in alert

    done = CliRunner().invoke(agent_cli, ["clear", "--config", str(config), first])
    assert done.exit_code == 0, done.output
    assert f"still blocked by {second}" in done.output
    assert [d.release for d in journal.blocking()] == [second]
    assert second in journal.status()["alert"][0]

    done = CliRunner().invoke(agent_cli, ["clear", "--config", str(config)])
    assert done.exit_code == 0 and "installs allowed again" in done.output, done.output
    assert journal.blocking() == [] and journal.status()["alert"][0] == ""
    journal.close()


def test_a_journal_with_the_older_flat_detail_still_loads_as_the_typed_record(tmp_path):
    """Before the typed record, details were a free JSON object with flat keys."""
    import json
    import sqlite3

    Journal(tmp_path / "j.db").close()
    old = {"target": {"length": 1}, "payload": "/x/a.tar", "bytes_from_hub": 7, "boots": 2,
           "at_downloading": 10.0, "at_verified": 12.5, "starts_snapshotting": 3,
           "not_ready_reported": True, "cleared_at": "2026-12-01T00:00:00+00:00",
           "from_a_newer_agent": [1]}
    db = sqlite3.connect(tmp_path / "j.db")
    db.execute("INSERT INTO deployments VALUES (?, 'demo', '1.0', 'snapshotting', '', ?, "
               "'2026-12-01T00:00:00+00:00', '2026-12-01T00:00:00+00:00')",
               (RELEASE, json.dumps(old)))
    db.commit()
    db.close()
    journal = Journal(tmp_path / "j.db")
    detail = journal.get(RELEASE).detail
    assert (detail.payload, detail.bytes_from_hub, detail.boots) == ("/x/a.tar", 7, 2)
    assert detail.at == {State.DOWNLOADING: 10.0, State.VERIFIED: 12.5}
    assert detail.starts == {State.SNAPSHOTTING: 3}
    assert detail.not_ready_reported and detail.cleared_at
    assert detail.unknown == {"from_a_newer_agent": [1]}
    assert journal.count_start(RELEASE, "starts_snapshotting") == 4
    journal.transition(RELEASE, State.VERIFIED, detail={"at_verified": 20.0})
    again = journal.get(RELEASE).detail
    assert again.at[State.VERIFIED] == 20.0 and again.starts[State.SNAPSHOTTING] == 4
    journal.close()


def test_a_detail_of_the_wrong_type_is_refused_where_it_is_written(journal):
    from agent.errors import JournalDetailError

    journal.create(RELEASE, "demo", "1.0")
    with pytest.raises(JournalDetailError, match=r"entering scheduled: boots"):
        journal.transition(RELEASE, State.SCHEDULED, detail={"boots": "many"})
    assert journal.get(RELEASE).state is State.PENDING  # nothing half-applied
