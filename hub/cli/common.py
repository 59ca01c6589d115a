"""What every `meisitong-hub` command shares: --dir, --json output, error handling."""

from __future__ import annotations

import functools
import getpass
import json
import sys
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.text import Text

from agent.errors import AgentError
from hub.database import HubDatabase
from hub.errors import HubError
from hub.hub_dir import HubDir, resolve_hub_dir

F = TypeVar("F", bound=Callable[..., Any])
# Everything printed is data (names, reasons, paths from admins and devices): never read
# as console markup ("[/opt/x] fails" crashed `rollout status` for good), and never
# wrapped mid-token (an enrollment token must copy as one line at any terminal width).
console = Console(markup=False, soft_wrap=True)
errors = Console(stderr=True, markup=False, soft_wrap=True)


def hub_dir_option(command: F) -> F:
    """Every hub command takes --dir (default MEISITONG_HUB_DIR, else /var/lib/meisitong/hub)."""
    return click.option(
        "--dir", "hub_dir", default=None, metavar="DIR",
        help="hub directory [env MEISITONG_HUB_DIR; default /var/lib/meisitong/hub]",
    )(command)


def json_option(command: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="machine-readable output")(
        command
    )


def friendly_errors(command: F) -> F:
    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (HubError, AgentError) as exc:
            # The message is data (paths, names, reasons), never console markup.
            errors.print(Text.assemble(("error:", "red"), " ", str(exc)))
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


def admin_actor() -> str:
    """Who the audit log says did it: the admin's login on the hub machine."""
    try:
        return f"admin:{getpass.getuser()}"
    except (OSError, KeyError):
        return "admin"


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True))


def parse_duration(text: str) -> timedelta:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if len(text) < 2 or text[-1] not in units or not text[:-1].isdigit():
        raise click.BadParameter(f"{text!r}: use a number and a unit, e.g. 30m, 24h, 7d")
    return timedelta(seconds=int(text[:-1]) * units[text[-1]])


def initialized_hub(hub_dir: str | None) -> HubDir:
    directory = HubDir(resolve_hub_dir(hub_dir))
    directory.require_initialized()
    return directory


def open_database(hub_dir: str | None) -> HubDatabase:
    return HubDatabase(initialized_hub(hub_dir).database)
