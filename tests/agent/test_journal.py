"""The journal keeps the lifecycle's rules and writes results atomically with states."""

import pytest

from agent.journal import Journal
from agent.lifecycle import RECOVERY, TERMINAL, TRANSITIONS, IllegalTransitionError, State

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
    assert deployment.detail == {"target": {"length": 1}, "x": 1}
    assert (tmp_path / "j.db").stat().st_mode & 0o777 == 0o600
    again.close()
