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

    database = open_database(hub_dir)
    try:
        paths = feed_files(list(files))
        advisories = read_feeds(list(files))
        summary = import_advisories(database, advisories, [str(path) for path in paths],
                                    admin_actor())
    finally:
        database.close()
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

    database = open_database(hub_dir)
    try:
        found = find_device(database, device)
        records = records_about(database, vulnerability)
        if not records:
            raise UnknownVulnerabilityError(
                f"no imported record is about {vulnerability!r} (`vulns import` a feed)")
        software = latest_software(database, [found["device_id"]]).get(found["device_id"])
    finally:
        database.close()
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
