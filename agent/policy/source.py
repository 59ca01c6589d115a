"""Where this device learns its group and its group's policy: verified TUF targets.

- group: the admin's signed assignment (`assignments/DEVICE_ID.json`) if there is one,
  else `[agent] group` of agent.toml;
- policy: target `policies/GROUP.toml`, signed by the offline release key. No target
  means no policy (any time). A policy that fails validation is not used: the last good
  one for the group stays in force (kept in STATE_DIR/policy/ across restarts), and if
  there never was one, the group is held as paused rather than left unrestricted.

Sync (it uses the MetadataClient): call it through `trio.to_thread.run_sync`.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

from agent.atomic_file import write_atomic
from agent.errors import MetadataError, PolicyError, TargetNotFoundError
from agent.metadata_client import MetadataClient
from agent.policy.assignment import GroupAssignment, assignment_target_path
from agent.policy.model import NO_POLICY, Policy, policy_target_path

log = logging.getLogger(__name__)

HOLD_POLICY = Policy(paused=True)
"""In force when a group's signed policy is invalid and no good one was ever seen."""


@dataclass(frozen=True)
class PolicyUpdate:
    group: str
    policy: Policy
    digest: str
    """sha256 of the policy bytes in force ('' for none): a change means re-plan."""
    note: str
    """What is in force and why, for `meisitong-agent status`."""
    error: str = ""


class PolicySource:
    def __init__(self, metadata: MetadataClient, cache_dir: Path, device_id: str,
                 configured_group: str) -> None:
        self.metadata = metadata
        self.cache_dir = cache_dir
        self.device_id = device_id
        self.configured_group = configured_group

    def cached(self) -> PolicyUpdate:
        """What was in force when the daemon last ran (no network)."""
        group = self.configured_group
        with contextlib.suppress(OSError):
            group = (self.cache_dir / "group").read_text().strip() or group
        return self._last_good(group, "")

    def refresh(self) -> PolicyUpdate:
        """Read the assignment and policy from the last refreshed metadata."""
        group, how = self._group()
        write_atomic(self.cache_dir / "group", group.encode(), mode=0o600)
        path = policy_target_path(group)
        try:
            data = self.metadata.download_small_target(path)
        except TargetNotFoundError:
            (self.cache_dir / f"{group}.toml").unlink(missing_ok=True)
            return PolicyUpdate(group, NO_POLICY, "", f"group {group} ({how}): no policy "
                                "published, any time")
        except MetadataError as exc:
            return self._last_good(group, f"cannot fetch {path}: {exc}")
        try:
            policy = Policy.from_toml(data, path)
        except PolicyError as exc:
            log.error("policy refused, keeping the last good one: %s", exc)
            return self._last_good(group, str(exc))
        write_atomic(self.cache_dir / f"{group}.toml", data, mode=0o600)
        digest = hashlib.sha256(data).hexdigest()
        return PolicyUpdate(group, policy, digest,
                            f"group {group} ({how}): policy {path} sha256 {digest[:12]}")

    def _group(self) -> tuple[str, str]:
        path = assignment_target_path(self.device_id)
        try:
            data = self.metadata.download_small_target(path)
        except TargetNotFoundError:
            return self.configured_group, "from agent.toml"
        except MetadataError as exc:
            log.warning("cannot read the group assignment, using agent.toml's: %s", exc)
            return self.configured_group, "from agent.toml"
        try:
            assignment = GroupAssignment.from_bytes(data, path)
        except PolicyError as exc:
            log.error("group assignment refused: %s", exc)
            return self.configured_group, "from agent.toml"
        if assignment.device_id != self.device_id:
            log.error("%s names device %s; ignored", path, assignment.device_id)
            return self.configured_group, "from agent.toml"
        return assignment.group, "assigned by the admin"

    def _last_good(self, group: str, error: str) -> PolicyUpdate:
        path = self.cache_dir / f"{group}.toml"
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            if error:
                return PolicyUpdate(group, HOLD_POLICY, "hold",
                                    f"group {group}: no good policy yet, holding", error)
            return PolicyUpdate(group, NO_POLICY, "", f"group {group}: no policy, any time")
        try:
            policy = Policy.from_toml(data, str(path))
        except PolicyError as exc:
            return PolicyUpdate(group, HOLD_POLICY, "hold",
                                f"group {group}: cached policy unusable, holding", str(exc))
        digest = hashlib.sha256(data).hexdigest()
        note = f"group {group}: last good policy sha256 {digest[:12]}"
        return PolicyUpdate(group, policy, digest, note, error)
