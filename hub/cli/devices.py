"""`meisitong-hub devices …`: the fleet."""

from __future__ import annotations

import click
from rich.table import Table

from hub.cli.common import (
    admin_actor,
    console,
    emit_json,
    friendly_errors,
    hub_dir_option,
    json_option,
    open_database,
)


@click.group()
def devices() -> None:
    """Enrolled devices."""


@devices.command("list")
@hub_dir_option
@json_option
@friendly_errors
def devices_list(hub_dir: str | None, as_json: bool) -> None:
    """Every enrolled device with its group, site and last contact."""
    database = open_database(hub_dir)
    try:
        rows = [
            {"device_id": d.device_id, "name": d.name, "group": d.group, "site": d.site,
             "status": d.status, "enrolled_at": d.enrolled_at, "last_seen": d.last_seen}
            for d in database.devices()
        ]
    finally:
        database.close()
    if as_json:
        emit_json(rows)
        return
    table = Table("device", "name", "group", "site", "status", "last seen")
    for row in rows:
        table.add_row(row["device_id"], row["name"], row["group"], row["site"], row["status"],
                      row["last_seen"] or "")
    console.print(table)


@devices.command("remove")
@hub_dir_option
@click.argument("device")
@friendly_errors
def devices_remove(hub_dir: str | None, device: str) -> None:
    """Decommission DEVICE (id or name): no more results, leases or rollout counting."""
    from hub.devices.enrollment import remove_device

    database = open_database(hub_dir)
    try:
        device_id = remove_device(database, device, admin_actor())
    finally:
        database.close()
    console.print(f"device {device_id} removed (its history stays; enrolling again brings it "
                  "back)")


@devices.command("group")
@hub_dir_option
@click.argument("device")
@click.argument("group")
@click.option("--offline-keys", type=click.Path(), default=None,
              help="directory holding the release key [default DIR/offline-keys]")
@click.option("--new-group", is_flag=True,
              help="create GROUP (refused otherwise when no device is in it and it has no policy)")
@friendly_errors
def devices_group(hub_dir: str | None, device: str, group: str, offline_keys: str | None,
                  new_group: bool) -> None:
    """Put DEVICE into GROUP: a signed assignment the device follows over its agent.toml."""
    from pathlib import Path

    from hub.cli.common import initialized_hub
    from hub.policy.policies import assign_group

    assign_group(initialized_hub(hub_dir), device, group,
                 Path(offline_keys) if offline_keys else None, actor=admin_actor(),
                 new_group=new_group)
    console.print(f"device {device} is now in group {group} (signed assignment published)")
