"""The states of one deployment on a device and the transitions allowed between them.

This module is the whole lifecycle: the allowed transitions (the journal refuses any
other), which state comes next for each way a step ends (`NEXT_STATE`, what the runner
in agent/deployment.py journals), the sets derived from them (before any change,
changes the device, terminal, boot-counted), the outcome each final state reports, and
recovery after a crash as a function of the last journaled state and a few journaled
facts (`resume_state`). Nothing here touches the disk or the network.

    pending → scheduled → downloading → verified → snapshotting → installing
        → [rebooting] → checking → committed
    on failure: → reverting → reverted | revert-failed
    before anything changed on the device: → failed
    before installing, once what is installed makes the release a downgrade (a newer
    version committed while it waited): → superseded (nothing changed)
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from agent.errors import IllegalTransitionError
from agent.wire.result import Outcome


class State(StrEnum):
    PENDING = "pending"
    SCHEDULED = "scheduled"
    DOWNLOADING = "downloading"
    VERIFIED = "verified"
    SNAPSHOTTING = "snapshotting"
    INSTALLING = "installing"
    REBOOTING = "rebooting"
    CHECKING = "checking"
    COMMITTED = "committed"
    REVERTING = "reverting"
    REVERTED = "reverted"
    REVERT_FAILED = "revert-failed"
    FAILED = "failed"
    SUPERSEDED = "superseded"


S = State
# Every state before installing may end in superseded: the release would now replace a
# newer installed version (agent/deployment_supersede.py). Nothing was changed.
TRANSITIONS: dict[State, frozenset[State]] = {
    S.PENDING: frozenset({S.SCHEDULED, S.FAILED, S.SUPERSEDED}),
    # A download that could not finish goes back to waiting; nothing was changed.
    S.SCHEDULED: frozenset({S.DOWNLOADING, S.FAILED, S.SUPERSEDED}),
    S.DOWNLOADING: frozenset({S.VERIFIED, S.SCHEDULED, S.FAILED, S.SUPERSEDED}),
    S.VERIFIED: frozenset({S.SNAPSHOTTING, S.FAILED, S.SUPERSEDED}),
    # Back to verified only in recovery: a partial snapshot is dropped and taken again.
    S.SNAPSHOTTING: frozenset({S.INSTALLING, S.VERIFIED, S.FAILED, S.SUPERSEDED}),
    S.INSTALLING: frozenset({S.REBOOTING, S.CHECKING, S.REVERTING}),
    S.REBOOTING: frozenset({S.CHECKING, S.REVERTING}),
    S.CHECKING: frozenset({S.COMMITTED, S.REVERTING}),
    S.REVERTING: frozenset({S.REVERTED, S.REVERT_FAILED}),
    S.COMMITTED: frozenset(),
    S.REVERTED: frozenset(),
    S.REVERT_FAILED: frozenset(),
    S.FAILED: frozenset(),
    S.SUPERSEDED: frozenset(),
}

class StepOutcome(StrEnum):
    """How a state's step ended; the runner journals the state `NEXT_STATE` names for it.

    (Waits that change nothing — policy says not now, installs are blocked, the reboot was
    requested — are no outcome: the step raises `RetryLater` and the state stays.)"""

    DONE = "done"
    NEEDS_REBOOT = "needs-reboot"
    """Installed; the release asks for a reboot before its checks."""
    POSTPONED = "postponed"
    """The download could not finish now (no peers, hub unreachable); nothing changed."""
    NOT_READY = "not-ready"
    """Not enough room to snapshot and install, or the release's requirements unmet
    (before the download); nothing changed, retried later."""
    REFUSED = "refused"
    """Before the install: the payload or the device makes it impossible; nothing changed."""
    FAILED = "failed"
    """After the device changed: the install or checks failed (revert); in reverting:
    the revert failed or could not be verified."""
    SUPERSEDED = "superseded"
    """Before the install: a newer version of the name is installed now."""


Out = StepOutcome
NEXT_STATE: dict[State, dict[StepOutcome, State]] = {
    S.PENDING: {Out.DONE: S.SCHEDULED, Out.SUPERSEDED: S.SUPERSEDED},
    S.SCHEDULED: {Out.DONE: S.DOWNLOADING, Out.SUPERSEDED: S.SUPERSEDED},
    S.DOWNLOADING: {Out.DONE: S.VERIFIED, Out.POSTPONED: S.SCHEDULED, Out.REFUSED: S.FAILED,
                    Out.SUPERSEDED: S.SUPERSEDED, Out.NOT_READY: S.SCHEDULED},
    S.VERIFIED: {Out.DONE: S.SNAPSHOTTING, Out.SUPERSEDED: S.SUPERSEDED},
    S.SNAPSHOTTING: {Out.DONE: S.INSTALLING, Out.NOT_READY: S.VERIFIED, Out.REFUSED: S.FAILED,
                     Out.SUPERSEDED: S.SUPERSEDED},
    S.INSTALLING: {Out.DONE: S.CHECKING, Out.NEEDS_REBOOT: S.REBOOTING, Out.FAILED: S.REVERTING},
    # The step asks for the reboot; the next start goes on (`resume_state`: rebooted).
    S.REBOOTING: {},
    S.CHECKING: {Out.DONE: S.COMMITTED, Out.FAILED: S.REVERTING},
    S.REVERTING: {Out.DONE: S.REVERTED, Out.FAILED: S.REVERT_FAILED},
}
"""Which state comes next for each way a state's step can end (as Mender's state machine
declares its transitions per event). Every entry is an allowed transition; the others in
TRANSITIONS are recovery's (`resume_state`)."""

TERMINAL: frozenset[State] = frozenset(s for s, nexts in TRANSITIONS.items() if not nexts)

FIRST_CHANGE = S.INSTALLING
"""The first state whose step changes the device."""


def _reachable(start: State) -> frozenset[State]:
    seen, pending = {start}, [start]
    while pending:
        for following in TRANSITIONS[pending.pop()]:
            if following not in seen:
                seen.add(following)
                pending.append(following)
    return frozenset(seen)


CHANGES_DEVICE: frozenset[State] = _reachable(FIRST_CHANGE) - TERMINAL
"""States in which the device may differ from its snapshot (every unfinished state from
the install on): a crash here must finish, check or revert, hub or no hub."""

BEFORE_INSTALL: frozenset[State] = frozenset(TRANSITIONS) - CHANGES_DEVICE - TERMINAL
"""States in which nothing on the device has changed yet: the downgrade check
(`ReleaseManifest.refuses_to_replace`) holds before each of their steps, a deployment
in one of them is superseded when a newer version of its name commits, and the daemon
lets one go on only while the refreshed signed rollout still says so (a halt or pause
signed meanwhile keeps it waiting, even if a crash cut its snapshot short)."""

REPORTS: dict[State, Outcome] = {
    S.COMMITTED: Outcome.INSTALLED,
    S.REVERTED: Outcome.REVERTED,
    S.REVERT_FAILED: Outcome.REVERT_FAILED,
    S.FAILED: Outcome.FAILED,
    S.SUPERSEDED: Outcome.SUPERSEDED,
}
"""The outcome each final state reports to the hub (a not-ready report is sent from
verified, not from a final state)."""

RECOVERY: dict[State, State] = {
    S.PENDING: S.PENDING,
    S.SCHEDULED: S.SCHEDULED,
    S.DOWNLOADING: S.DOWNLOADING,
    S.VERIFIED: S.VERIFIED,
    # The snapshot may be partial: drop it and take it again (nothing was changed yet).
    S.SNAPSHOTTING: S.VERIFIED,
    S.INSTALLING: S.REVERTING,
    S.REBOOTING: S.CHECKING,
    S.CHECKING: S.REVERTING,
    S.REVERTING: S.REVERTING,
}
"""Where an interrupted deployment resumes when nothing else is known (the conservative
answer); `resume_state` refines it with what the journal knows."""

BOOT_COUNTED: frozenset[State] = frozenset(
    s for s in CHANGES_DEVICE if S.COMMITTED in _reachable(s)
)
"""States between the install and the commit (reverting is not): every agent start is
counted in them, and a release that keeps the device (or the agent) from getting
through its checks is reverted after `max_boots` starts."""

LOOP_COUNTED: frozenset[State] = BEFORE_INSTALL
"""States in which every agent start is counted per state (`starts_key`), as Mender's
state-loop detection does: a step that kills the agent each time it runs (a snapshot of
a tree that crashes it, a download that does) ends the deployment in failed, nothing
changed, after more than `max_boots` starts found it there. The count is dropped each
time the step ends without the agent dying (a wait for a window, a postponed download),
so waiting across reboots is no loop. With BOOT_COUNTED and reverting, every
non-terminal state is counted."""


def starts_key(state: State) -> str:
    """The journal detail that counts the agent starts which found a deployment in `state`
    (a LOOP_COUNTED one) since its step last ended without the agent dying."""
    return f"starts_{state.value}"


@dataclass(frozen=True)
class ResumeFacts:
    """What recovery needs to know besides the last state, all of it from the journal."""

    boots: int = 0
    """Agent starts counted while the deployment was in a BOOT_COUNTED state."""
    revert_boots: int = 0
    """Agent starts counted while it was reverting."""
    starts_here: int = 0
    """Agent starts that found it in this LOOP_COUNTED state since its step last ended
    without the agent dying."""
    max_boots: int = 3
    installer_idempotent: bool = False
    """Running the install again over a half-done one finishes it correctly."""
    rebooted: bool = False
    """The boot the deployment asked for has happened (boot id changed since `rebooting`)."""


def resume_state(state: State, facts: ResumeFacts) -> tuple[State, str]:
    """Where a deployment found in `state` at start continues, and why (for the journal).

    - interrupted before the device changed: that step again (a partial snapshot is
      dropped and taken again);
    - interrupted install: again if the installer is idempotent, else revert;
    - in `rebooting`: the checks if the boot happened, else ask for it again;
    - interrupted checks: run them again (they only read);
    - more than `max_boots` starts after installing without getting through the checks:
      revert; more than `max_boots` starts while reverting: revert-failed (an admin);
    - more than `max_boots` starts in the same step before installing, each time without
      the step ending: a state loop, failed (nothing was changed).
    """
    if state in LOOP_COUNTED and facts.starts_here > facts.max_boots:
        return S.FAILED, (
            f"state loop: {facts.starts_here} agent starts found it in {state} without the "
            f"step ending (more than {facts.max_boots}); nothing changed"
        )
    if state in BOOT_COUNTED and facts.boots > facts.max_boots:
        return S.REVERTING, (
            f"boot counter: {facts.boots} starts without passing the checks "
            f"(more than {facts.max_boots})"
        )
    if state is S.REVERTING and facts.revert_boots > facts.max_boots:
        return S.REVERT_FAILED, (
            f"boot counter: {facts.revert_boots} starts without finishing the revert"
        )
    if state is S.INSTALLING:
        if facts.installer_idempotent:
            return S.INSTALLING, "install interrupted; the installer is idempotent: again"
        return S.REVERTING, "install interrupted; reverting"
    if state is S.REBOOTING:
        if facts.rebooted:
            return S.CHECKING, "rebooted; checking health"
        return S.REBOOTING, "reboot not yet done; asking again"
    if state is S.CHECKING:
        return S.CHECKING, "checks interrupted; running them again"
    resumed = RECOVERY.get(state, state)
    return resumed, f"resumed after interruption in {state}" if resumed is not state else ""


def check_transition(current: State, new: State) -> None:
    if new not in TRANSITIONS[current]:
        raise IllegalTransitionError(f"deployment cannot go from {current} to {new}")
