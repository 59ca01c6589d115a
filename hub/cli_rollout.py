"""`meisitong-hub rollout …`: roll published releases out to device groups."""

from __future__ import annotations

import click

from hub.cli_common import (
    console,
    emit_json,
    friendly_errors,
    hub_dir_option,
    initialized_hub,
    json_option,
)


@click.group()
def rollout() -> None:
    """Roll a published release out to a device group."""


@rollout.command("start")
@hub_dir_option
@click.argument("release")
@click.option("--group", required=True, help="device group")
@json_option
@friendly_errors
def rollout_start(hub_dir: str | None, release: str, group: str, as_json: bool) -> None:
    """Start rolling RELEASE (NAME or NAME@VERSION) out to --group."""
    from hub.rollouts import start_rollout

    entry = start_rollout(initialized_hub(hub_dir), release, group)
    if as_json:
        emit_json({"group": group, **entry.model_dump(mode="json")})
    else:
        console.print(f"rollout of {entry.release} to group {group}: {entry.state}, "
                      f"{entry.stage_percent}%")
