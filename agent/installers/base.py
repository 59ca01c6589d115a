"""What every installer offers the lifecycle: what it will change, install, rollback.

The lifecycle snapshots `planned_paths` before `install`, and on a failed install or
failed health checks calls `rollback` and then restores the snapshot. So `rollback` is
only the undo the installer itself knows (stopping a service it started, telling a
package manager); exactness comes from the snapshot.

Public methods are final (logging, argument shape); an installer writes the `_x` ones.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar, final

from agent.disk_space import SpaceNeed
from agent.install_prefix import InstallPrefix

logger = logging.getLogger(__name__)


class Installer(ABC):
    """Applies one kind of install spec to a payload."""

    kind: ClassVar[str]
    idempotent: ClassVar[bool] = False
    """True if running `install` again over a half-done install finishes it correctly."""

    @final
    def planned_paths(self, payload: Path, prefix: InstallPrefix) -> list[Path]:
        """Paths (under `prefix`) the install may change; the caller snapshots them first.

        Blocking (may read the payload): call it from a worker thread.
        """
        paths = self._planned_paths(Path(payload), prefix)
        logger.debug("%s install of %s plans %d path(s)", self.kind, payload, len(paths))
        return paths

    @final
    def space_needed(self, payload: Path, prefix: InstallPrefix, workdir: Path) -> list[SpaceNeed]:
        """Room the install will take, per place (checked before the snapshot). Blocking."""
        return self._space_needed(Path(payload), prefix, Path(workdir))

    @final
    async def install(self, payload: Path, prefix: InstallPrefix, workdir: Path) -> None:
        """Apply the payload; InstallError (or UnsafeArchiveError) says why it did not."""
        logger.info("%s install of %s under %s", self.kind, payload, prefix.path)
        await self._install(Path(payload), prefix, Path(workdir))

    @final
    async def rollback(self, payload: Path, prefix: InstallPrefix, workdir: Path) -> None:
        """Best-effort undo known to the installer; the snapshot restore follows it.
        Must be safe to run again after a crash half way, and after no install at all."""
        logger.info("%s rollback of %s under %s", self.kind, payload, prefix.path)
        await self._rollback(Path(payload), prefix, Path(workdir))

    @final
    async def verify_reverted(self, prefix: InstallPrefix, workdir: Path) -> str:
        """After rollback and restore: a note on what was checked; InstallError if the old
        state is not back (the lifecycle then ends in revert-failed)."""
        return await self._verify_reverted(prefix, Path(workdir))

    def _space_needed(self, payload: Path, prefix: InstallPrefix, workdir: Path) -> list[SpaceNeed]:
        return [SpaceNeed(workdir, payload.stat().st_size, "payload extraction")]

    async def _verify_reverted(self, prefix: InstallPrefix, workdir: Path) -> str:
        return ""

    @abstractmethod
    def _planned_paths(self, payload: Path, prefix: InstallPrefix) -> list[Path]: ...

    @abstractmethod
    async def _install(self, payload: Path, prefix: InstallPrefix, workdir: Path) -> None: ...

    @abstractmethod
    async def _rollback(self, payload: Path, prefix: InstallPrefix, workdir: Path) -> None: ...
