"""Reboot adapters: the one side effect the lifecycle cannot undo, behind a small class.

The lifecycle journals `rebooting` (with the current boot id) before it asks for a
reboot, so the agent that starts afterwards knows a reboot was wanted and can tell,
by comparing boot ids, whether it happened. Implementations write `_reboot`.

- `SystemReboot` (`[lifecycle] reboot = "system"`): `systemctl reboot`; the boot id is
  the kernel's (`/proc/sys/kernel/random/boot_id`).
- `AgentRestart` (`reboot = "restart-agent"`): the agent exits with `RESTART_EXIT_CODE`
  and its supervisor (systemd `Restart=`, a container runtime, a test harness) starts
  it again; a "boot" is then an agent process, so its boot id names the process. For
  containers and tests, where rebooting the machine is not possible or not wanted.
"""

from __future__ import annotations

import logging
import os
import sys
from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar, final

import trio

from agent.errors import ConfigError

logger = logging.getLogger(__name__)

RESTART_EXIT_CODE = 75
"""What the agent exits with when it "reboots" by restarting itself (EX_TEMPFAIL)."""

BOOT_ID_FILE = Path("/proc/sys/kernel/random/boot_id")


class RebootAdapter(ABC):
    name: ClassVar[str]

    @abstractmethod
    def boot_id(self) -> str:
        """Differs between two boots, equal within one."""

    @final
    async def reboot(self, release: str) -> None:
        """Reboot; does not return in a process that survives it."""
        logger.warning("rebooting for %s (%s)", release, self.name)
        await self._reboot()

    @abstractmethod
    async def _reboot(self) -> None: ...


class SystemReboot(RebootAdapter):
    name = "system"

    def boot_id(self) -> str:
        return BOOT_ID_FILE.read_text().strip()

    async def _reboot(self) -> None:
        await trio.run_process(["systemctl", "reboot"], check=True)
        await trio.sleep_forever()  # systemd stops us


class AgentRestart(RebootAdapter):
    name = "restart-agent"

    def boot_id(self) -> str:
        import psutil  # only in this test-and-demo mode: the system adapter needs none

        me = psutil.Process()
        return f"pid {me.pid} started {me.create_time():.3f}"

    async def _reboot(self) -> None:
        for handler in logging.getLogger().handlers:
            handler.flush()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(RESTART_EXIT_CODE)  # like a reboot: no cleanup runs


ADAPTERS: dict[str, type[RebootAdapter]] = {"system": SystemReboot, "restart-agent": AgentRestart}


def reboot_adapter(name: str) -> RebootAdapter:
    try:
        return ADAPTERS[name]()
    except KeyError:
        raise ConfigError(
            f"[lifecycle] reboot: unknown adapter {name!r} (one of {', '.join(ADAPTERS)})"
        ) from None

