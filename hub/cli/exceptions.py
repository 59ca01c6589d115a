"""`meisitong-hub exceptions add|list|remove`: take a device out of a release's
compliance scope for a while, with a reason (audited; hub/compliance/exceptions.py)."""

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
def exceptions() -> None:
    """Compliance exceptions: a device excepted from a release until an expiry date."""


@exceptions.command("add")
@hub_dir_option
@click.argument("device")
@click.argument("release")
@click.option("--reason", required=True, help="why (printed in every compliance report)")
@click.option("--expires", required=True, metavar="DATE",
              help="ISO 8601 date (its midnight UTC) or instant; then the device is back "
              "in scope with its original deadline")
@json_option
@friendly_errors
def exceptions_add(hub_dir: str | None, device: str, release: str, reason: str,
                   expires: str, as_json: bool) -> None:
    """Except DEVICE (id or name) from RELEASE (NAME@VERSION, NAME, or target)."""
    from hub.compliance.exceptions import add_exception

    with open_database(hub_dir) as database:
        added = add_exception(database, device, release, reason, expires, admin_actor())
    expiry = added.expires_at.isoformat(timespec="seconds")
    if as_json:
        emit_json({"device_id": added.device_id, "release": added.release,
                   "reason": added.reason, "expires_at": expiry})
        return
    console.print(f"device {added.device_id} excepted from {added.release} until {expiry}",
                  highlight=False)


@exceptions.command("list")
@hub_dir_option
@json_option
@friendly_errors
def exceptions_list(hub_dir: str | None, as_json: bool) -> None:
    """Every exception, expired ones included (they no longer count)."""
    from hub.compliance.exceptions import list_exceptions

    with open_database(hub_dir) as database:
        rows = list_exceptions(database)
    if as_json:
        emit_json(rows)
        return
    if not rows:
        console.print("no exceptions")
        return
    table = Table("device", "release", "reason", "expires", "state", "by")
    for row in rows:
        table.add_row(f"{row['device']} ({row['device_id']})", str(row["release"]),
                      str(row["reason"]), str(row["expires_at"]),
                      "expired" if row["expired"] else "active", str(row["created_by"]))
    console.print(table)


@exceptions.command("remove")
@hub_dir_option
@click.argument("device")
@click.argument("release")
@friendly_errors
def exceptions_remove(hub_dir: str | None, device: str, release: str) -> None:
    """Remove DEVICE's exception from RELEASE: it is in scope again at once."""
    from hub.compliance.exceptions import remove_exception

    with open_database(hub_dir) as database:
        device_id = remove_exception(database, device, release, admin_actor())
    console.print(f"exception of device {device_id} removed: in scope again")
