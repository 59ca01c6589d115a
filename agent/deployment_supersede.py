"""No older version lands on a newer one, whenever the newer one arrived.

The downgrade check at selection (`rollout_selection.select_releases`) sees only what is
installed when a deployment is created. A deployment may then wait for days before it
installs (a weekly window, a withheld payload), and meanwhile a newer release of the
same name may install — a critical fix past its deadline. Installing the waiting one
afterwards would take the device back without any admin having signed a rollback.

So the check is asked again, from the signed release pinned in the journal and what
the journal says is installed: before every step up to installing (`DeploymentRun`),
when a newer version commits (`supersede_waiting` for that name), and at every start
(`start_recovery.prepare_start`, for a crash between a commit and this sweep). A
deployment that fails it ends `superseded`: nothing on the device changed, and the
signed result says so (its own outcome, not a failure: the rollout controller does not
count it against the release).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from agent.deployment_files import finish_cleanup
from agent.deployment_result import signed_result
from agent.errors import WireFormatError
from agent.journal import Deployment
from agent.lifecycle import BEFORE_INSTALL, State
from agent.wire.release import ReleaseInfo
from agent.wire.result import Outcome

if TYPE_CHECKING:
    from agent.deployment import DeploymentContext

log = logging.getLogger(__name__)


def superseded_reason(refusal: str) -> str:
    return f"superseded, nothing changed: {refusal}"


def pinned_release(deployment: Deployment) -> ReleaseInfo:
    """The admin-signed release data the deployment was created with (in the journal)."""
    return ReleaseInfo.from_custom(dict((deployment.detail.target or {})["custom"]),
                                   deployment.release)


def supersede_waiting(ctx: DeploymentContext, name: str | None = None) -> list[str]:
    """End every deployment that has changed nothing yet (of `name`, or of any name) and
    that would now replace a newer or equal installed version; returns their releases.

    Each ends in one journal transaction with its signed `superseded` result; its
    snapshot and work files (a snapshot taken just before a crash) are removed."""
    ended = []
    for deployment in ctx.journal.unfinished():
        if deployment.state not in BEFORE_INSTALL:
            continue
        if name is not None and deployment.name != name:
            continue
        try:
            info = pinned_release(deployment)
        except WireFormatError as exc:  # the runner reports it when it gets there
            log.warning("%s: cannot check for a downgrade: %s", deployment.release, exc)
            continue
        refusal = info.manifest.refuses_to_replace(
            ctx.journal.installed_version(info.manifest.name))
        if refusal is None:
            continue
        reason = superseded_reason(refusal)
        detail = {f"at_{State.SUPERSEDED.value}": time.time()}
        result = signed_result(ctx.identity, deployment, info, Outcome.SUPERSEDED, reason,
                               detail, State.SUPERSEDED)
        finished = ctx.journal.transition(deployment.release, State.SUPERSEDED, reason,
                                          detail, result=result)
        log.warning("%s: %s", deployment.release, reason)
        ctx.crash.after_transition(State.SUPERSEDED.value)
        finish_cleanup(ctx.state_dir, ctx.snapshots, finished)
        ended.append(deployment.release)
    if ended:
        ctx.on_result()
    return ended
