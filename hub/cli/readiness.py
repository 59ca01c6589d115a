"""`meisitong-hub readiness RELEASE`: which devices a release's requirements let it
reach, predicted from their latest inventories (hub/readiness/), before any rollout."""

from __future__ import annotations

import click
from rich.table import Table

from hub.cli.common import console, friendly_errors, hub_dir_option, initialized_hub


@click.command("readiness")
@hub_dir_option
@click.argument("release")
@click.option("--group", default=None, help="only devices of GROUP")
@click.option("--format", "output_format", type=click.Choice(("table", "json", "csv")),
              default="table", show_default=True)
@friendly_errors
def readiness(hub_dir: str | None, release: str, group: str | None, output_format: str) -> None:
    """Predict which devices are ready for RELEASE (NAME, NAME@VERSION or target path)
    and why the others are not, with the evaluation agents run before downloading;
    devices without an inventory yet are "unknown"."""
    from hub.readiness.prediction import NOT_READY, READY, UNKNOWN, predict
    from hub.readiness.render import to_csv, to_json

    report = predict(initialized_hub(hub_dir), release, group)
    if output_format == "json":
        click.echo(to_json(report), nl=False)
        return
    if output_format == "csv":
        click.echo(to_csv(report), nl=False)
        return
    counts = ", ".join(f"{report.count(s)} {s}" for s in (READY, NOT_READY, UNKNOWN))
    declared = "no requirements" if report.requirements is None else "its requirements"
    console.print(f"{report.release} ({declared}), group {group or 'all'}: {counts}",
                  highlight=False)
    if not report.devices:
        console.print("no enrolled devices")
        return
    table = Table("device", "group", "status", "inventory of")
    table.add_column("why not", overflow="fold")
    for device in report.devices:
        table.add_row(device.name, device.group, device.status, device.inventory_at or "-",
                      "; ".join(str(u) for u in device.unmet) or
                      ("no inventory yet" if device.status == UNKNOWN else ""))
    console.print(table)
