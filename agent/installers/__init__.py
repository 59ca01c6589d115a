"""Installers: apply a payload as its install spec says, and say what they will change.

Use `installer_for(spec, package_store)`; each installer offers `planned_paths`,
`space_needed`, `install`, `rollback` and `verify_reverted` (see `agent.installers.base`).
"""

from pathlib import Path

from agent.installers.base import Installer
from agent.installers.command_pair import CommandPairInstaller
from agent.installers.dpkg_package import DpkgInstaller
from agent.installers.file_tree import FileTreeInstaller
from agent.wire.release import CommandPairInstall, DpkgInstall, FileTreeInstall


def installer_for(
    spec: FileTreeInstall | CommandPairInstall | DpkgInstall,
    package_store: Path | None = None,
) -> Installer:
    """The installer for a release's `install` spec; `package_store` is where the dpkg
    installer keeps the .debs it may have to go back to (the agent's state directory)."""
    if isinstance(spec, FileTreeInstall):
        return FileTreeInstaller(spec)
    if isinstance(spec, DpkgInstall):
        if package_store is None:
            raise ValueError("a dpkg install needs a package store")
        return DpkgInstaller(spec, package_store)
    return CommandPairInstaller(spec)


__all__ = [
    "CommandPairInstaller", "DpkgInstaller", "FileTreeInstaller", "Installer", "installer_for",
]
