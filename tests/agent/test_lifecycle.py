"""Recovery is a pure function of the last journaled state and a few journaled facts."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from agent.config import AgentConfig
from agent.crash_points import CrashPoints
from agent.errors import ConfigError
from agent.journal import Journal
from agent.lifecycle import (
    BEFORE_INSTALL,
    BOOT_COUNTED,
    CHANGES_DEVICE,
    NEXT_STATE,
    REPORTS,
    TERMINAL,
    TRANSITIONS,
    ResumeFacts,
    State,
    StepOutcome,
    resume_state,
)

S = State


def test_interrupted_steps_before_the_device_changed_are_taken_again():
    for state in (S.PENDING, S.SCHEDULED, S.DOWNLOADING, S.VERIFIED):
        assert resume_state(state, ResumeFacts())[0] is state
    assert resume_state(S.SNAPSHOTTING, ResumeFacts())[0] is S.VERIFIED


def test_interrupted_install_is_run_again_only_by_an_idempotent_installer():
    assert resume_state(S.INSTALLING, ResumeFacts(installer_idempotent=True))[0] is S.INSTALLING
    assert resume_state(S.INSTALLING, ResumeFacts(installer_idempotent=False))[0] is S.REVERTING


def test_a_reboot_that_happened_leads_to_the_checks_one_that_did_not_is_asked_again():
    assert resume_state(S.REBOOTING, ResumeFacts(rebooted=True))[0] is S.CHECKING
    assert resume_state(S.REBOOTING, ResumeFacts(rebooted=False))[0] is S.REBOOTING
    assert resume_state(S.CHECKING, ResumeFacts(boots=1))[0] is S.CHECKING


def test_more_boots_than_allowed_before_passing_the_checks_reverts():
    for state in (S.INSTALLING, S.REBOOTING, S.CHECKING):
        resumed, why = resume_state(state, ResumeFacts(boots=4, max_boots=3, rebooted=True,
                                                       installer_idempotent=True))
        assert resumed is S.REVERTING and "boot counter" in why
        assert resume_state(state, ResumeFacts(boots=3, max_boots=3, rebooted=True,
                                               installer_idempotent=True))[0] is not S.REVERTING


def test_a_revert_that_keeps_getting_interrupted_ends_in_revert_failed():
    assert resume_state(S.REVERTING, ResumeFacts(revert_boots=3))[0] is S.REVERTING
    assert resume_state(S.REVERTING, ResumeFacts(revert_boots=4))[0] is S.REVERT_FAILED


def test_more_starts_than_allowed_in_one_step_before_installing_is_a_state_loop_and_fails():
    for state in (S.PENDING, S.SCHEDULED, S.DOWNLOADING, S.VERIFIED, S.SNAPSHOTTING):
        resumed, why = resume_state(state, ResumeFacts(starts_here=4, max_boots=3))
        assert resumed is S.FAILED and "state loop" in why and "nothing changed" in why
        assert resume_state(state, ResumeFacts(starts_here=3, max_boots=3))[0] is not S.FAILED


def test_every_resume_is_a_transition_the_table_allows():
    facts = [ResumeFacts(boots=b, revert_boots=b, starts_here=b, installer_idempotent=i,
                         rebooted=r)
             for b in (0, 9) for i in (True, False) for r in (True, False)]
    for state in State:
        if not TRANSITIONS[state]:
            continue
        for fact in facts:
            resumed, _ = resume_state(state, fact)
            assert resumed is state or resumed in TRANSITIONS[state], (state, fact)


def test_journal_counts_starts_and_keeps_revert_failed_blocking_until_cleared(tmp_path):
    journal = Journal(tmp_path / "journal.db")
    release = "releases/app/1/app.tar"
    journal.create(release, "app", "1")
    assert journal.count_start(release, "boots") == 1
    assert journal.count_start(release, "boots") == 2
    for state in (S.SCHEDULED, S.DOWNLOADING, S.VERIFIED, S.SNAPSHOTTING, S.INSTALLING,
                  S.REVERTING, S.REVERT_FAILED):
        journal.transition(release, state)
    assert [d.release for d in journal.blocking()] == [release]
    cleared = journal.clear(release, by="ops")
    assert cleared.state is S.REVERT_FAILED and cleared.detail.cleared_by == "ops"
    assert journal.blocking() == []
    assert journal.transitions(release)[-1][2] == "cleared by ops"
    journal.close()


def test_crash_point_spec_names_the_state_and_which_occurrence():
    points = CrashPoints("installing:2")
    assert points.armed and points.state == "installing" and points.count == 2
    assert not CrashPoints(None).armed
    assert not CrashPoints("").armed


def test_crash_hook_kills_the_process_with_sigkill_only_at_its_point(tmp_path):
    program = (
        "from agent.crash_points import crash_points\n"
        "p = crash_points()\n"
        "p.after_transition('scheduled')\n"
        "print('passed scheduled', flush=True)\n"
        "p.after_transition('installing')\n"
        "print('survived installing', flush=True)\n"
    )
    env = {**os.environ, "MEISITONG_CRASH_AFTER": "installing"}
    done = subprocess.run([sys.executable, "-c", program], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == -signal.SIGKILL
    assert "passed scheduled" in done.stdout and "survived" not in done.stdout
    assert "TEST HOOK ARMED" in done.stderr
    unset = {k: v for k, v in os.environ.items() if k != "MEISITONG_CRASH_AFTER"}
    done = subprocess.run([sys.executable, "-c", program], env=unset, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and "survived installing" in done.stdout


def test_lifecycle_settings_are_validated_and_shipped_with_safe_defaults(tmp_path):
    shipped = AgentConfig.load(Path(__file__).resolve().parents[2] / "config/agent.toml")
    assert shipped.lifecycle.reboot == "system" and shipped.lifecycle.max_boots == 3
    bad = tmp_path / "agent.toml"
    bad.write_text('[lifecycle]\nreboot = "kexec"\nmax_boots = 0\n')
    with pytest.raises(ConfigError, match=r"lifecycle\.reboot") as error:
        AgentConfig.load(bad)
    assert "lifecycle.max_boots" in str(error.value)


def test_every_state_is_in_exactly_one_set_and_every_declared_next_state_is_allowed():
    for state in State:
        sets = [name for name, members in (("before install", BEFORE_INSTALL),
                                           ("changes the device", CHANGES_DEVICE),
                                           ("terminal", TERMINAL)) if state in members]
        assert len(sets) == 1, (state, sets)
        assert (state in REPORTS) == (state in TERMINAL), state
        assert (state in NEXT_STATE) == (state not in TERMINAL), state
    for state, nexts in NEXT_STATE.items():
        for outcome, following in nexts.items():
            assert following in TRANSITIONS[state], (state, outcome, following)
    assert BOOT_COUNTED < CHANGES_DEVICE and S.REVERTING not in BOOT_COUNTED
    # Readable as the lifecycle says it: the derived sets are these.
    before = {S.PENDING, S.SCHEDULED, S.DOWNLOADING, S.VERIFIED, S.SNAPSHOTTING}
    assert before == BEFORE_INSTALL
    assert {S.INSTALLING, S.REBOOTING, S.CHECKING, S.REVERTING} == CHANGES_DEVICE
    assert {S.INSTALLING, S.REBOOTING, S.CHECKING} == BOOT_COUNTED


def test_nothing_before_the_install_leads_to_a_revert_and_nothing_after_it_to_failed():
    for state in BEFORE_INSTALL:
        assert NEXT_STATE[state][StepOutcome.SUPERSEDED] is S.SUPERSEDED
        assert S.REVERTING not in NEXT_STATE[state].values(), state
    for state in CHANGES_DEVICE:
        assert not {S.FAILED, S.SUPERSEDED} & set(NEXT_STATE[state].values()), state


def test_only_the_runner_journals_a_next_state_the_steps_report_how_they_ended():
    """Journal before act by structure: a step cannot journal a state the table does not
    name for its ending, nor act after journaling one."""
    import inspect

    from agent.deployment import DeploymentRun, StepEnd

    steps = [f"_{state.value}" for state in NEXT_STATE]  # one per non-terminal state
    for name in steps:
        method = getattr(DeploymentRun, name)
        assert inspect.signature(method).return_annotation in ("StepEnd", StepEnd), name
        source = inspect.getsource(method)
        assert "_journal(" not in source and "journal.transition(" not in source, name
