"""Where everything of a hub lives on disk, in one place.

The admin's offline keys (root, release) are written by `init` to a directory of their
own so they can be moved off the hub server; the online keys the hub signs with
unattended (snapshot, timestamp, rollout) stay with it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from hub.errors import HubNotInitializedError

DEFAULT_HUB_DIR = Path("/var/lib/meisitong/hub")


def resolve_hub_dir(option: str | None) -> Path:
    """--dir, else MEISITONG_HUB_DIR, else /var/lib/meisitong/hub."""
    if option:
        return Path(option).resolve()
    from_env = os.environ.get("MEISITONG_HUB_DIR")
    return Path(from_env).resolve() if from_env else DEFAULT_HUB_DIR


@dataclass(frozen=True)
class HubDir:
    root: Path

    @property
    def config_file(self) -> Path:
        return self.root / "hub.toml"

    @property
    def offline_keys(self) -> Path:
        """Default place `init` writes the admin's root and release keys."""
        return self.root / "offline-keys"

    @property
    def online_keys(self) -> Path:
        return self.root / "online-keys"

    @property
    def repository(self) -> Path:
        return self.root / "repository"

    @property
    def metadata(self) -> Path:
        """Served at /metadata/: TUF metadata files."""
        return self.repository / "metadata"

    @property
    def targets(self) -> Path:
        """Served at /targets/: small signed target files (rollout documents, torrents),
        stored under consistent-snapshot names `HASH.NAME`."""
        return self.repository / "targets"

    @property
    def payloads(self) -> Path:
        """Served at /payloads/ (the web seed): payload files at their target paths."""
        return self.root / "payloads"

    @property
    def database(self) -> Path:
        return self.root / "hub.db"

    @property
    def enrollment_token(self) -> Path:
        return self.root / "enrollment-token"

    def require_initialized(self) -> None:
        if not (self.metadata / "root.json").exists() or not self.database.exists():
            raise HubNotInitializedError(
                f"{self.root} is not a hub directory; create it with "
                f"`meisitong-hub init --dir {self.root}`"
            )
