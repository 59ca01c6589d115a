"""`meisitong-hub vulns …`: import vulnerability feeds from files (hubs may be
air-gapped), report the fleet's exposure, explain one device's match."""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path
from typing import Any

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
from hub.database import HubDatabase
from hub.errors import UnknownDeviceError, UnknownVulnerabilityError


@click.group()
def vulns() -> None:
    """Known vulnerabilities: feeds, the fleet's exposure, and why a device matched."""


@vulns.command("import")
@hub_dir_option
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@json_option
@friendly_errors
def vulns_import(hub_dir: str | None, files: tuple[Path, ...], as_json: bool) -> None:
    """Import OSV records (one, a list, or a directory of them) and the Debian security
    tracker's JSON. All files are validated first: one bad record, and nothing is stored."""
    from hub.vulns.feed_files import feed_files, read_feeds
    from hub.vulns.store import import_advisories

    with open_database(hub_dir) as database:
        paths = feed_files(list(files))
        advisories = read_feeds(list(files))
        summary = import_advisories(database, advisories, [str(path) for path in paths],
                                    admin_actor())
    if as_json:
        emit_json(summary.as_dict())
        return
    console.print(f"{summary.records} records from {summary.files} files: {summary.added} "
                  f"added, {summary.replaced} replaced, {summary.unchanged} unchanged, "
                  f"{summary.kept_newer} kept (the hub holds a newer version)")


def find_device(database: HubDatabase, spec: str) -> dict[str, str]:
    rows = [row for row in database.devices() if spec in (row.device_id, row.name)]
    if len(rows) != 1:
        raise UnknownDeviceError(f"no single enrolled device with id or name {spec!r}"
                                 + (f" ({len(rows)} have that name)" if rows else ""))
    return {"device_id": rows[0].device_id, "name": rows[0].name, "group": rows[0].group}


@vulns.command("explain")
@hub_dir_option
@click.argument("vulnerability")
@click.argument("device")
@json_option
@friendly_errors
def vulns_explain(hub_dir: str | None, vulnerability: str, device: str, as_json: bool) -> None:
    """Why DEVICE is (or is not) exposed to VULNERABILITY (a CVE id or record id): each
    record, range and installed version."""
    from hub.inventory.store import latest_software
    from hub.vulns.explanation import explain
    from hub.vulns.store import records_about

    with open_database(hub_dir) as database:
        found = find_device(database, device)
        records = records_about(database, vulnerability)
        if not records:
            raise UnknownVulnerabilityError(
                f"no imported record is about {vulnerability!r} (`vulns import` a feed)")
        software = latest_software(database, [found["device_id"]]).get(found["device_id"])
    answer = explain(vulnerability, found, software, records)
    if as_json:
        emit_json(answer)
        return
    console.print(f"{vulnerability} on {found['name']} ({found['device_id']}, group "
                  f"{found['group']}, release {answer['release'] or '-'}): {answer['verdict']}")
    if answer.get("why"):
        console.print(f"  {answer['why']}")
    for record in answer["records"]:
        console.print(f"record {record['record_id']} ({record['feed']}, {record['file']}"
                      + (f", modified {record['modified']}" if record["modified"] else "")
                      + ")")
        for statement in record["statements"]:
            console.print(f"  [{statement['verdict']}] {statement['about']}: "
                          f"{statement['why']}")


def emit_csv(rows: list[dict[str, Any]], columns: list[str]) -> None:
    out = io.StringIO()
    writer = csv.DictWriter(out, columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: "; ".join(map(str, value)) if isinstance(value, list) else value
                         for key, value in row.items()})
    sys.stdout.write(out.getvalue())


def _table(columns: list[str]) -> Table:
    return Table(*columns)


REPORT_COLUMNS = ["vulnerability", "group", "severity", "score", "state", "device_count",
                  "devices", "installed", "fixed_in", "suggested_releases",
                  "rollout_commands", "records", "severity_source", "suggestion"]


@vulns.command("report")
@hub_dir_option
@click.option("--group", default=None, help="only this device group")
@click.option("--severity", type=click.Choice(["critical", "high", "medium", "low",
                                               "unimportant", "unknown"]), default=None,
              help="only vulnerabilities at least this severe")
@click.option("--format", "output", type=click.Choice(["table", "json", "csv"]),
              default="table", show_default=True)
@friendly_errors
def vulns_report(hub_dir: str | None, group: str | None, severity: str | None,
                 output: str) -> None:
    """Exposure per vulnerability x group: devices, installed and fixed versions,
    severity, and the release that fixes it with a ready `rollout start` line."""
    from hub.cli.common import initialized_hub
    from hub.inventory.store import latest_software
    from hub.vulns.exposure import DeviceInfo, exposure_report
    from hub.vulns.fixing_releases import package_releases
    from hub.vulns.matching import FeedIndex, Matcher
    from hub.vulns.store import advisory_infos, debian_statements

    directory = initialized_hub(hub_dir)
    database = HubDatabase(directory.database)
    try:
        devices = {row.device_id: DeviceInfo(row.device_id, row.name, row.group)
                   for row in database.devices() if row.status != "removed"}
        fleet = [software for device_id, software in latest_software(database).items()
                 if device_id in devices and (group is None or devices[device_id].group == group)]
        infos = advisory_infos(database)
        findings = Matcher(FeedIndex(debian_statements(database))).match_fleet(
            fleet, {device_id: device.group for device_id, device in devices.items()})
        releases = package_releases(directory, database)
    finally:
        database.close()
    rows = exposure_report(findings, infos, devices, releases, group, severity,
                           hub_dir or "")
    if output == "json":
        emit_json(rows)
        return
    if output == "csv":
        emit_csv(rows, REPORT_COLUMNS)
        return
    if not rows:
        console.print(f"no exposure found: {len(fleet)} devices with inventories, "
                      f"{len(infos)} feed records")
        return
    table = _table(["vulnerability", "group", "severity", "state", "devices", "installed",
                    "fixed in", "release"])
    for row in rows:
        label = row["severity"] + (f" {row['score']:.1f}" if row["score"] is not None else "")
        table.add_row(row["vulnerability"], row["group"], label, row["state"],
                      str(row["device_count"]), "\n".join(row["installed"]),
                      "\n".join(row["fixed_in"]) or "-",
                      "\n".join(row["suggested_releases"]) or "-")
    console.print(table)
    # whole lines, never wrapped inside a table cell, so each copies as it is
    for row in rows:
        for command in row["rollout_commands"]:
            console.print(f"{row['vulnerability']} {row['group']}: {command}")
        if row["state"] == "fixable" and not row["rollout_commands"]:
            console.print(f"{row['vulnerability']} {row['group']}: {row['suggestion']}")
