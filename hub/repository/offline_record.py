"""`offline.toml`: what the admin's offline side knows, kept beside the offline keys.

Two facts the hub server must not be able to change, because a compromised server is
the attacker we plan for:

- `root_v1_sha256`: the SHA-256 of the first root metadata (`1.root.json`), recorded by
  `init`. Enrollment tokens pin this hash, so swapping `root.json` on the server cannot
  make new devices trust an attacker's root; and version 1 stays the start of the chain
  after root rotations (devices verify each later root against the one before).
- `targets_expiry_days`: how long the offline-signed targets metadata (releases,
  policies, group assignments) stays valid. A frozen hub can replay old targets metadata
  until it expires, hiding a new pause: the shorter, the sooner devices notice (they
  stop installing), at the cost of re-signing offline (`meisitong-hub targets resign`).

Written atomically, mode 0600, in the offline keys directory (0700).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from agent.atomic_file import write_private
from hub.errors import HubConfigError

FILE_NAME = "offline.toml"
DEFAULT_TARGETS_EXPIRY_DAYS = 14
MAX_TARGETS_EXPIRY_DAYS = 365
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def check_targets_expiry_days(days: int, where: str) -> int:
    if not 1 <= days <= MAX_TARGETS_EXPIRY_DAYS:
        raise HubConfigError(
            f"{where}: targets expiry must be 1 to {MAX_TARGETS_EXPIRY_DAYS} days, not {days}")
    return days


def check_sha256(text: str, where: str) -> str:
    if not _SHA256.match(text):
        raise HubConfigError(f"{where}: {text!r} is not a SHA-256 in lowercase hex (64 digits)")
    return text


@dataclass(frozen=True)
class OfflineRecord:
    root_v1_sha256: str
    targets_expiry_days: int = DEFAULT_TARGETS_EXPIRY_DAYS

    @staticmethod
    def path(offline_keys_dir: Path) -> Path:
        return Path(offline_keys_dir) / FILE_NAME

    @classmethod
    def load(cls, offline_keys_dir: Path) -> OfflineRecord:
        path = cls.path(offline_keys_dir)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise HubConfigError(
                f"{path} does not exist: it is written by `meisitong-hub init` beside the "
                "offline keys (pass --offline-keys DIR where they are)") from None
        except OSError as exc:
            raise HubConfigError(f"{path}: cannot read: {exc.strerror}") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise HubConfigError(f"{path}: not valid TOML: {exc}") from None
        unknown = set(data) - {"root_v1_sha256", "targets_expiry_days"}
        if unknown:
            raise HubConfigError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}")
        root = data.get("root_v1_sha256")
        days = data.get("targets_expiry_days", DEFAULT_TARGETS_EXPIRY_DAYS)
        if not isinstance(root, str):
            raise HubConfigError(f"{path}: root_v1_sha256 must be a string")
        if not isinstance(days, int) or isinstance(days, bool):
            raise HubConfigError(f"{path}: targets_expiry_days must be a whole number")
        return cls(check_sha256(root, f"{path}: root_v1_sha256"),
                   check_targets_expiry_days(days, f"{path}: targets_expiry_days"))

    def write(self, offline_keys_dir: Path) -> None:
        write_private(self.path(offline_keys_dir), (
            "# Written by `meisitong-hub init`; keep it with the offline keys.\n"
            "# root_v1_sha256: the hash enrollment tokens pin (compare with the token's tail).\n"
            "# targets_expiry_days: how long offline-signed targets metadata stays valid.\n"
            f'root_v1_sha256 = "{self.root_v1_sha256}"\n'
            f"targets_expiry_days = {self.targets_expiry_days}\n").encode())
