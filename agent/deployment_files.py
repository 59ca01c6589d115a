"""Where a deployment keeps its files on the endpoint, and how they go away.

A deployment's snapshot store and work directory are named by a hash of its release
(`deployment_key`). When it ends they are deleted (`finish_cleanup`), except after a
revert-failed that no admin has cleared: the snapshot may be what the admin needs. The
daemon runs the same cleanup at start for deployments that ended just before a crash.
"""

from __future__ import annotations

import hashlib
import logging
import shutil

from agent.errors import AgentError
from agent.journal import Deployment
from agent.snapshots import SnapshotBackend, SnapshotManifest, backend_for_manifest
from agent.state_dir import StateDir
from agent.wire.release import ReleaseInfo

log = logging.getLogger(__name__)


def deployment_key(release: str) -> str:
    """The name of a deployment's snapshot store and work directory."""
    return hashlib.sha256(release.encode()).hexdigest()[:16]


def finish_cleanup(state_dir: StateDir, default: SnapshotBackend, deployment: Deployment) -> None:
    """Delete a finished deployment's snapshot and work files; idempotent."""
    if deployment.blocks_installs:
        return
    key = deployment_key(deployment.release)
    shutil.rmtree(state_dir.work / key, ignore_errors=True)
    if deployment.detail.snapshot is not None:
        manifest = SnapshotManifest.from_json(deployment.detail.snapshot)
        try:
            backend_for_manifest(manifest, default).discard(manifest)
        except AgentError as exc:
            log.warning("%s: leftover snapshot not removed: %s", deployment.release, exc)
    shutil.rmtree(state_dir.snapshots / key, ignore_errors=True)


def prune_finished_downloads(
    state_dir: StateDir, deployments: list[Deployment], open_torrents: set[str]
) -> list[str]:
    """Delete the payloads of finished deployments that are no longer seeded, so the
    downloads directory does not grow release after release. Returns what was pruned.

    Kept: payloads libtorrent may still have open (`open_torrents`, v1 info-hashes: seeded
    to peers, or removed from the session but not yet closed), and those of an uncleared
    revert-failed (an admin may want to look at exactly what was installed; once cleared,
it goes like any other)."""
    pruned = []
    for deployment in deployments:
        if not deployment.finished or deployment.blocks_installs:
            continue
        directory = state_dir.downloads / deployment_key(deployment.release)
        if not directory.exists():
            continue
        try:
            custom = (deployment.detail.target or {})["custom"]
            info_hash = ReleaseInfo.from_custom(custom, deployment.release).torrent.info_hash_v1
        except (KeyError, TypeError, AgentError):
            info_hash = ""
        if info_hash in open_torrents:
            continue
        shutil.rmtree(directory, ignore_errors=True)
        pruned.append(deployment.release)
    return pruned
