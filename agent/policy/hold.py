"""The hold: signed metadata lists a policy or assignment this device cannot fetch or
verify, so nothing new starts until it can.

Why not fall back: the file may be the admin's pause, a new window, or a move into a
stricter group. A hub that answers 404 (or serves a tampered copy) for that one file
must not get the device to act under an older or looser rule than the admin signed. So
the device keeps the group it had, starts no new deployment and no install, and says
which file and why in `meisitong-agent status`. Only a policy that downloads and
verifies but fails validation (an admin's mistake, not an attack the hub can make) falls
back to the group's last good policy.

The hold is journaled (STATE_DIR/policy/hold, written atomically, 0600) before it is put
in force, so a restart comes back held; it is cleared once the file verifies again.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from agent.atomic_file import write_atomic


@dataclass(frozen=True)
class PolicyHold:
    file: str
    """The target path signed metadata lists (policies/GROUP.toml, assignments/ID.json)."""
    why: str
    since: str
    """When the hold began (UTC, ISO 8601); kept while the same file stays unfetchable."""

    def describe(self) -> str:
        return (f"{self.file}: {self.why}; nothing new starts until it verifies "
                f"(since {self.since})")


def read_hold(path: Path) -> PolicyHold | None:
    """The journaled hold, or None. An unreadable record counts as a hold: the daemon
    starts held rather than unrestricted, until the next refresh decides."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        return PolicyHold(str(path), f"hold record unreadable: {exc.strerror}", "")
    try:
        fields = json.loads(data)
        return PolicyHold(str(fields["file"]), str(fields["why"]), str(fields["since"]))
    except (ValueError, KeyError, TypeError):
        return PolicyHold(str(path), "hold record unreadable: not the expected JSON", "")


def write_hold(path: Path, hold: PolicyHold) -> None:
    write_atomic(path, json.dumps(asdict(hold), sort_keys=True).encode(), mode=0o600)


def clear_hold(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
