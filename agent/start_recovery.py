"""What the daemon does once at start, before it resumes anything: count this start
against every unfinished deployment (the boot counter between install and commit, the
revert counter, the state-loop counter before install), end waiting
deployments that a newer installed version has superseded (a crash may have come
between that commit and its sweep), and remove what deployments that ended before a
crash could not clean up themselves.

Resuming itself is the deployment runner's job (`DeploymentRun.run` with
`lifecycle.resume_state`); this module only prepares the journal and the state
directory for it. Nothing runs concurrently at this point, so any temporary file found
in the state directory is a leftover.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from agent.deployment import DeploymentContext
from agent.deployment_files import deployment_key, finish_cleanup
from agent.deployment_supersede import supersede_waiting
from agent.lifecycle import BOOT_COUNTED, LOOP_COUNTED, State, starts_key

log = logging.getLogger(__name__)

TEMP_SUFFIXES = (".tmp", ".partial")


def prepare_start(ctx: DeploymentContext) -> list[str]:
    """Returns the releases superseded now (the daemon gives back what was held for them)."""
    journal = ctx.journal
    for deployment in journal.unfinished():
        if deployment.state in BOOT_COUNTED:
            boots = journal.count_start(deployment.release, "boots")
            log.warning("%s: start %d while %s (revert after %d)", deployment.release, boots,
                        deployment.state, ctx.max_boots)
        elif deployment.state is State.REVERTING:
            journal.count_start(deployment.release, "revert_boots")
        elif deployment.state in LOOP_COUNTED:
            journal.count_start(deployment.release, starts_key(deployment.state))
    superseded = supersede_waiting(ctx)
    keep = set()
    for deployment in journal.deployments():
        if deployment.finished:
            finish_cleanup(ctx.state_dir, ctx.snapshots, deployment)
        if not deployment.finished or deployment.blocks_installs:
            keep.add(deployment_key(deployment.release))
    for directory in (ctx.state_dir.snapshots, ctx.state_dir.work):
        _remove_orphans(directory, keep)
    _remove_temp_files(ctx.state_dir.root)
    return superseded


def _remove_orphans(directory: Path, keep: set[str]) -> None:
    if not directory.is_dir():
        return
    for child in directory.iterdir():
        if child.name not in keep:
            log.info("removing leftover %s", child)
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)


def _remove_temp_files(root: Path) -> None:
    """Atomic writes (`.NAME.XXXX.tmp`) and partial copies cut short by a crash."""
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            if name.startswith(".") and name.endswith(TEMP_SUFFIXES):
                log.info("removing leftover %s", Path(dirpath) / name)
                (Path(dirpath) / name).unlink(missing_ok=True)
