"""The states of one deployment on a device and the transitions allowed between them.

This table is the whole lifecycle: the journal refuses any transition not listed, and
recovery after a crash is a function of the last journaled state (see `RECOVERY`).

    pending → scheduled → downloading → verified → snapshotting → installing
        → [rebooting] → checking → committed
    on failure: → reverting → reverted | revert-failed
    before anything changed on the device: → failed
"""

from __future__ import annotations

from enum import StrEnum


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


S = State
TRANSITIONS: dict[State, frozenset[State]] = {
    S.PENDING: frozenset({S.SCHEDULED, S.FAILED}),
    # A download that could not finish goes back to waiting; nothing was changed.
    S.SCHEDULED: frozenset({S.DOWNLOADING, S.FAILED}),
    S.DOWNLOADING: frozenset({S.VERIFIED, S.SCHEDULED, S.FAILED}),
    S.VERIFIED: frozenset({S.SNAPSHOTTING, S.FAILED}),
    # Back to verified only in recovery: a partial snapshot is dropped and taken again.
    S.SNAPSHOTTING: frozenset({S.INSTALLING, S.VERIFIED, S.FAILED}),
    S.INSTALLING: frozenset({S.REBOOTING, S.CHECKING, S.REVERTING}),
    S.REBOOTING: frozenset({S.CHECKING, S.REVERTING}),
    S.CHECKING: frozenset({S.COMMITTED, S.REVERTING}),
    S.REVERTING: frozenset({S.REVERTED, S.REVERT_FAILED}),
    S.COMMITTED: frozenset(),
    S.REVERTED: frozenset(),
    S.REVERT_FAILED: frozenset(),
    S.FAILED: frozenset(),
}

TERMINAL: frozenset[State] = frozenset(s for s, nexts in TRANSITIONS.items() if not nexts)

CHANGES_DEVICE: frozenset[State] = frozenset(
    {S.INSTALLING, S.REBOOTING, S.CHECKING, S.REVERTING}
)
"""States in which the device may differ from its snapshot: a crash here must revert."""

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
"""Where an interrupted deployment resumes: the state the daemon continues from."""


class IllegalTransitionError(RuntimeError):
    """A bug: code tried a transition the lifecycle table does not allow."""


def check_transition(current: State, new: State) -> None:
    if new not in TRANSITIONS[current]:
        raise IllegalTransitionError(f"deployment cannot go from {current} to {new}")
