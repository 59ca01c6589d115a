"""`meisitong-hub report …`: reports from the hub's database; `report compliance` first."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from hub.cli.common import console, friendly_errors, hub_dir_option, initialized_hub

FORMATS = ("table", "json", "csv", "html", "pdf")


@click.group()
def report() -> None:
    """Reports: compliance per group and severity."""


def compliance_report(hub_dir: str | None, group: str | None, severity: str | None,
                      since: str | None, now: datetime | None = None) -> dict[str, Any]:
    """The filtered report of the hub at `hub_dir` (also what `evidence export` puts in);
    the console's report page calls the same hub/compliance/hub_report.py."""
    from hub.compliance.hub_report import hub_report, parse_filters
    from hub.config import HubConfig
    from hub.database import HubDatabase

    filters = parse_filters(group, severity, since)
    directory = initialized_hub(hub_dir)
    database = HubDatabase(directory.database)
    try:
        return hub_report(database, HubConfig.load(directory.config_file), filters, now)
    finally:
        database.close()


def render(report_data: dict[str, Any], output_format: str) -> bytes:
    from hub.compliance.hub_report import render_export

    return render_export(report_data, output_format)


@report.command("compliance")
@hub_dir_option
@click.option("--group", default=None, help="only devices of GROUP")
@click.option("--severity", default=None, help="only releases of SEVERITY")
@click.option("--since", default=None,
              help="only releases published at or after this date or instant (ISO 8601)")
@click.option("--format", "output_format", type=click.Choice(FORMATS), default="table",
              show_default=True)
@click.option("--output", type=click.Path(path_type=Path), default=None,
              help="write to FILE instead of standard output (pdf needs it)")
@friendly_errors
def report_compliance(hub_dir: str | None, group: str | None, severity: str | None,
                      since: str | None, output_format: str, output: Path | None) -> None:
    """Per group and severity: the share of in-scope devices that installed each release
    within the policy's deadline, mean and p95 hours to install, and every exception with
    its reason. json and csv have one row per device and release; html and pdf are a
    printable evidence document. The filters apply to every format."""
    from agent.atomic_file import write_atomic

    data = compliance_report(hub_dir, group, severity, since)
    if output_format == "table":
        if output is not None:
            raise click.UsageError("--output needs --format json, csv, html or pdf")
        _print_table(data)
        return
    if output_format == "pdf" and output is None:
        raise click.UsageError("--format pdf needs --output FILE")
    rendered = render(data, output_format)
    if output is None:
        click.echo(rendered.decode(), nl=False)
    else:
        write_atomic(output, rendered, mode=0o644)
        console.print(f"{output_format} report written to {output} "
                      f"({len(data['rows'])} rows, {len(data['exceptions'])} exceptions)")


def _print_table(data: dict[str, Any]) -> None:
    from hub.compliance.render import SUMMARY_HEADERS, hours, summary_cells
    from hub.compliance.report import percent

    filters = data["filters"]
    console.print(f"compliance of {data['hub']} at {data['generated_at']} (group "
                  f"{filters['group'] or 'all'}, severity {filters['severity'] or 'all'}, "
                  f"since {filters['since'] or 'any time'})", highlight=False)
    if not data["rows"]:
        console.print("no device has a rolled-out release matching these filters")
        return
    summary = Table(*SUMMARY_HEADERS, title="per group and severity")
    for row in data["summary"]:
        summary.add_row(*summary_cells(row))
    console.print(summary)
    releases = Table("group", "release", "in scope", "compliant", "share", "mean h", "p95 h",
                     title="per release")
    for row in data["releases"]:
        releases.add_row(row["group"], row["release"], str(row["in_scope"]),
                         str(row["compliant"]), percent(row["share"]),
                         hours(row["mean_hours"]), hours(row["p95_hours"]))
    console.print(releases)
    if data["exceptions"]:
        exceptions = Table("group", "device", "release", "status", "reason",
                           title="exceptions")
        for row in data["exceptions"]:
            exceptions.add_row(row["group"], row["device"], f"{row['name']} {row['version']}",
                               row["status"], row["reason"])
        console.print(exceptions)
