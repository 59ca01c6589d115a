"""Where this device learns its group and its group's policy: verified TUF targets.

- group: the admin's signed assignment (`assignments/DEVICE_ID.json`) if the signed
  metadata lists one, else `[agent] group` of agent.toml;
- policy: target `policies/GROUP.toml`, signed by the offline release key. No target
  means no policy (any time).
- A listed assignment or policy that cannot be fetched or does not verify (the hub
  answers 404, serves a tampered copy, is unreachable for that file), or an assignment
  that does not validate, puts the device on hold (agent/policy/hold.py): it keeps the
  group it had, starts nothing new, and says why. It never falls back to agent.toml's
  group or an older policy for that.
- A policy that verifies but fails validation is not used: the last good one for the
  group stays in force (kept in STATE_DIR/policy/ across restarts), and if there never
  was one, the group is held as paused rather than left unrestricted.

Sync (it uses the MetadataClient): call it through `trio.to_thread.run_sync`.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from agent.atomic_file import write_atomic
from agent.errors import MetadataError, PolicyError, TargetNotFoundError
from agent.metadata_client import MetadataClient
from agent.policy.assignment import GroupAssignment, assignment_target_path
from agent.policy.hold import PolicyHold, clear_hold, read_hold, write_hold
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
    hold: PolicyHold | None = None
    """Set while a listed policy or assignment cannot be fetched or verified: nothing
    new may start (the gate refuses admission and installs)."""


class _Hold(Exception):
    def __init__(self, file: str, why: str) -> None:
        super().__init__(f"{file}: {why}")
        self.file, self.why = file, why


class PolicySource:
    def __init__(self, metadata: MetadataClient, cache_dir: Path, device_id: str,
                 configured_group: str) -> None:
        self.metadata = metadata
        self.cache_dir = cache_dir
        self.device_id = device_id
        self.configured_group = configured_group

    @property
    def hold_file(self) -> Path:
        return self.cache_dir / "hold"

    def cached(self) -> PolicyUpdate:
        """What was in force when the daemon last ran (no network), hold included."""
        group = self._group_in_force()
        update = self._last_good(group, "")
        hold = read_hold(self.hold_file)
        return update if hold is None else self._held(update, hold)

    def refresh(self) -> PolicyUpdate:
        """Read the assignment and policy from the last refreshed metadata."""
        try:
            group, how = self._group()
        except _Hold as held:
            return self._hold(self._group_in_force(), held)
        path = policy_target_path(group)
        try:
            data = self.metadata.download_small_target(path)
        except TargetNotFoundError:
            self._commit_group(group)
            (self.cache_dir / f"{group}.toml").unlink(missing_ok=True)
            return PolicyUpdate(group, NO_POLICY, "", f"group {group} ({how}): no policy "
                                "published, any time")
        except MetadataError as exc:
            # The assignment (if any) verified, so the group it names is the admin's.
            self._commit_group(group, end_hold=False)
            return self._hold(group, _Hold(path, f"listed in the signed metadata but cannot "
                                           f"be fetched or verified: {exc}"))
        self._commit_group(group)
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
        """The group and how it was decided; raises _Hold if a listed assignment
        cannot be fetched, verified or read."""
        path = assignment_target_path(self.device_id)
        try:
            data = self.metadata.download_small_target(path)
        except TargetNotFoundError:
            return self.configured_group, "from agent.toml"
        except MetadataError as exc:
            raise _Hold(path, "listed in the signed metadata but cannot be fetched or "
                        f"verified: {exc}") from None
        try:
            assignment = GroupAssignment.from_bytes(data, path)
        except PolicyError as exc:
            raise _Hold(path, f"signed but invalid: {exc}") from None
        if assignment.device_id != self.device_id:
            raise _Hold(path, f"signed for device {assignment.device_id}, not this one")
        return assignment.group, "assigned by the admin"

    def _group_in_force(self) -> str:
        group = self.configured_group
        with contextlib.suppress(OSError):
            group = (self.cache_dir / "group").read_text().strip() or group
        return group

    def _commit_group(self, group: str, end_hold: bool = True) -> None:
        """The group is known from verified metadata: record it, and end any hold
        unless the caller is about to journal one (which keeps its `since`)."""
        write_atomic(self.cache_dir / "group", group.encode(), mode=0o600)
        if end_hold:
            clear_hold(self.hold_file)

    def _hold(self, group: str, held: _Hold) -> PolicyUpdate:
        """Journal the hold, then return it for the gate to put in force."""
        log.error("holding: %s", held)
        previous = read_hold(self.hold_file)
        since = (previous.since if previous is not None and previous.file == held.file
                 and previous.since else datetime.now(UTC).isoformat(timespec="seconds"))
        hold = PolicyHold(held.file, held.why, since)
        write_hold(self.hold_file, hold)
        return self._held(self._last_good(group, ""), hold)

    @staticmethod
    def _held(update: PolicyUpdate, hold: PolicyHold) -> PolicyUpdate:
        return PolicyUpdate(update.group, update.policy, f"hold:{update.digest}",
                            f"group {update.group} kept, HOLDING ({update.note})",
                            update.error, hold)

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
