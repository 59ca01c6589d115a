"""Installers: apply a payload as its install spec says, and say what they will change.

Use `installer_for(spec)`; each installer offers `planned_paths`, `install`, `rollback`
(see `agent.installers.base`).
"""

from agent.installers.base import Installer
from agent.installers.command_pair import CommandPairInstaller
from agent.installers.file_tree import FileTreeInstaller
from agent.wire.release import CommandPairInstall, FileTreeInstall


def installer_for(spec: FileTreeInstall | CommandPairInstall) -> Installer:
    """The installer for a release's `install` spec."""
    if isinstance(spec, FileTreeInstall):
        return FileTreeInstaller(spec)
    return CommandPairInstaller(spec)


__all__ = ["CommandPairInstaller", "FileTreeInstaller", "Installer", "installer_for"]
