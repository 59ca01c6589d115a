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
    with open_database(hub_dir) as database:
        rows = [
            {"device_id": d.device_id, "name": d.name, "group": d.group, "site": d.site,
             "status": d.status, "enrolled_at": d.enrolled_at, "last_seen": d.last_seen}
            for d in database.devices()
        ]
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

    with open_database(hub_dir) as database:
        device_id = remove_device(database, device, admin_actor())
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


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{count} B"
        value /= 1024
    return f"{count} B"


@devices.command("show")
@hub_dir_option
@json_option
@click.argument("device")
@click.option("--packages", "with_packages", is_flag=True, help="list every installed package")
@click.option("--changes", type=click.IntRange(min=0, max=1000), default=10, show_default=True,
              help="how many recent inventory changes to show")
@friendly_errors
def devices_show(hub_dir: str | None, as_json: bool, device: str, with_packages: bool,
                 changes: int) -> None:
    """DEVICE (id or name): its OS, kernel, hardware, packages and recent changes, as its
    own signed inventory records said."""
    from hub.inventory.device_report import device_report

    with open_database(hub_dir) as database:
        report = device_report(database, device, with_packages, changes)
    if as_json:
        emit_json(report)
        return
    console.print(f"{report['device_id']}  {report['name']}  group {report['group']}  "
                  f"site {report['site']}  {report['status']}  last seen "
                  f"{report['last_seen'] or 'never'}")
    inventory = report["inventory"]
    if inventory is None:
        console.print("no inventory received yet")
        return
    hardware = inventory["hardware"]
    console.print(f"OS        {inventory['os']['pretty_name'] or inventory['os']['id']}")
    console.print(f"kernel    {inventory['kernel']} ({inventory['architecture']})")
    if hardware.get("product_name"):
        console.print(f"model     {hardware['product_name']}")
    console.print(f"hardware  {hardware['cpu_count']} CPU {hardware['cpu_model']}, "
                  f"{_size(hardware['memory_bytes'])} RAM, disk "
                  f"{_size(hardware['disk_free_bytes'])} free of "
                  f"{_size(hardware['disk_total_bytes'])}")
    console.print(f"packages  {inventory['package_count']} installed (collected "
                  f"{inventory['collected_at']}, record {inventory['sequence']})")
    for held in inventory["releases"]:
        console.print(f"release   {held['name']} {held['version']}")
    if with_packages:
        table = Table("package", "version", "arch", "source", "source version")
        for package in inventory["packages"]:
            table.add_row(package["name"], package["version"], package["architecture"],
                          package["source"], package["source_version"])
        console.print(table)
    if report["changes"]:
        console.print("recent changes:")
    for change in report["changes"]:
        if change["first"]:
            console.print(f"  {change['collected_at']}  first inventory, "
                          f"{change['package_count']} packages")
            continue
        parts = [f"{key} {before} -> {after}" for key, (before, after) in
                 change["facts"].items()]
        parts += [f"{name} {old or '(none)'} -> {new or '(removed)'}"
                  for name, old, new in change["releases"]]
        parts += [f"{p['name']}:{p['architecture']} {p['old_version'] or '(new)'} -> "
                  f"{p['new_version'] or '(removed)'}" for p in change["packages"]]
        console.print(f"  {change['collected_at']}  " + "; ".join(parts[:20])
                      + (f"; and {len(parts) - 20} more" if len(parts) > 20 else ""))
