"""The seam through which policy decides *when* a deployment may act.

The lifecycle asks the gate at the points where time and permission matter: before it
starts changing the device (maintenance window, deadline, disruption-budget lease),
before a reboot, and when the deployment is over (to give back a lease). The default
gate allows everything at once; the policy engine provides the real one.
"""

from __future__ import annotations

from typing import Protocol

from agent.wire.release import ReleaseInfo


class DeploymentGate(Protocol):
    async def wait_for_install(self, release: str, info: ReleaseInfo) -> None:
        """Return when the device may start snapshotting and installing `release`.

        May sleep for days (until a window opens); cancellation is safe, nothing has
        changed on the device yet.
        """

    async def wait_for_reboot(self, release: str, info: ReleaseInfo) -> None:
        """Return if the device may reboot for `release` now; else raise NotEligibleYet
        (agent/policy/gate.py) saying when to ask again. Never waits in place: the
        deployment stays in `rebooting` and the daemon goes on with everything else."""

    async def finished(self, release: str) -> None:
        """The deployment reached a terminal state: release what was held for it."""


class AlwaysAllow:
    """No policy: act at once."""

    async def wait_for_install(self, release: str, info: ReleaseInfo) -> None:
        return None

    async def wait_for_reboot(self, release: str, info: ReleaseInfo) -> None:
        return None

    async def finished(self, release: str) -> None:
        return None
