"""What every console request needs, made once per console app: the hub directory,
session expiry, trusted proxies, the login throttle, the templates, the clock."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import jinja2
import trio

from hub.console.fleet_overview import ONLINE_SECONDS
from hub.console.live import LiveRollouts
from hub.console.login_throttle import LoginThrottle
from hub.console.request_origin import TrustedProxies
from hub.console.sessions import SessionPolicy
from hub.database import HubDatabase
from hub.hub_dir import HubDir

PREFIX = "/console"
SESSION_COOKIE = "meisitong_console"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"
SCOPE_SESSION = "meisitong.console_session"
SCOPE_CSRF_CHECKED = "meisitong.console_csrf_checked"

T = TypeVar("T")


def make_templates() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,  # every value is data from devices and admins
        undefined=jinja2.StrictUndefined,
    )


@dataclass
class ConsoleState:
    hub_dir: HubDir
    policy: SessionPolicy
    proxies: TrustedProxies
    throttle: LoginThrottle = field(default_factory=LoginThrottle)
    templates: jinja2.Environment = field(default_factory=make_templates)
    clock: Callable[[], float] = time.time
    # Password checks at a time: each argon2id check holds 64 MiB for its ~0.1 s.
    password_checks: trio.CapacityLimiter = field(
        default_factory=lambda: trio.CapacityLimiter(2)
    )
    # Report downloads rendered at a time: a 10,000-device PDF takes ~30 s of one core.
    exports: trio.CapacityLimiter = field(default_factory=lambda: trio.CapacityLimiter(1))
    live: LiveRollouts | None = None
    """The rollouts' live progress (hub/console/live.py), run by `serve`."""
    online_seconds: float = ONLINE_SECONDS
    """A device heard from within this is online ([metrics] online_within)."""

    def __post_init__(self) -> None:
        if self.live is None:  # no stream without `serve` running it; pages still read
            self.live = LiveRollouts(self.hub_dir.database)

    async def in_database(self, work: Callable[[HubDatabase], T]) -> T:
        """`work` on a connection of its own, in a worker thread."""

        def run() -> T:
            database = HubDatabase(self.hub_dir.database)
            try:
                return work(database)
            finally:
                database.close()

        result: Any = await trio.to_thread.run_sync(run)
        return result  # type: ignore[no-any-return]
