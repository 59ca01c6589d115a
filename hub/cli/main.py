"""`meisitong-hub`: the admin's commands. One command per intent, `--json` on every read,
errors as one clear line and a non-zero exit. Command groups live in `hub/cli_*.py`."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import click
from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from agent.log_format import LogFormat, configure_logging
from hub.cli.common import (
    admin_actor,
    console,
    emit_json,
    errors,
    friendly_errors,
    hub_dir_option,
    json_option,
    open_database,
    parse_duration,
)
from hub.hub_dir import HubDir, resolve_hub_dir


@click.group()
@click.version_option(package_name="meisitong", prog_name="meisitong-hub")
@click.option("-v", "--verbose", count=True, help="more log output (-vv for debug)")
@click.option("--log-format", type=click.Choice(["text", "json"]), default=None,
              help="log lines as text, or one JSON object each [default: hub.toml's "
              "[logging] format for serve, else text]")
def main(verbose: int, log_format: LogFormat | None) -> None:
    """Meisitong hub: publish signed releases, roll them out, watch the fleet."""
    configure_logging(logging.WARNING - 10 * verbose, log_format)


@main.command()
@hub_dir_option
@click.option("--offline-keys", type=click.Path(path_type=Path), default=None,
              help="where to write the root and release keys [default DIR/offline-keys]")
@click.option("--listen", default="127.0.0.1:8080", show_default=True, help="HTTP IP:PORT")
@click.option("--public-url", default="", help="how agents reach the hub [http://LISTEN]")
@click.option("--seed-listen", default="127.0.0.1:6881", show_default=True,
              help="BitTorrent seeder IP:PORT")
@click.option("--targets-expiry-days", type=int, default=14, show_default=True,
              help="how long offline-signed targets metadata (releases, policies) stays "
              "valid; renew with `targets resign` (kept in OFFLINE_KEYS/offline.toml)")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@friendly_errors
def init(hub_dir: str | None, offline_keys: Path | None, listen: str, public_url: str,
         seed_listen: str, targets_expiry_days: int, as_json: bool) -> None:
    """Create a hub directory: TUF repository, keys, database, enrollment token."""
    from hub.hub_init import initialize_hub

    created = initialize_hub(
        HubDir(resolve_hub_dir(hub_dir)), offline_keys, listen, public_url, seed_listen,
        targets_expiry_days, actor=admin_actor(),
    )
    if as_json:
        emit_json(created)
        return
    console.print(f"hub directory      {created['dir']}")
    console.print(Text.assemble(
        f"offline keys       {created['offline_keys']}  ",
        ("(move these off the server; `publish` needs the release key)", "yellow"),
    ))
    console.print(f"root sha256        {created['root_sha256']}  (root v1, recorded in "
                  "offline.toml: every token ends with it; note it off the server)")
    console.print(f"targets expire     every {created['targets_expiry_days']} days: "
                  "`meisitong-hub targets resign` before that")
    console.print(f"enrollment token   {created['token']}")


@main.group()
def token() -> None:
    """Enrollment tokens."""


@token.command("create")
@hub_dir_option
@click.option("--valid-for", default=None, help="e.g. 24h, 7d [default: no expiry]")
@click.option("--max-uses", type=click.IntRange(min=1), default=None)
@click.option("--offline-keys", type=click.Path(path_type=Path), default=None,
              help="directory holding offline.toml [default DIR/offline-keys]")
@click.option("--root-sha256", default=None, metavar="HEX",
              help="the root hash `init` printed (instead of reading offline.toml)")
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def token_create(hub_dir: str | None, valid_for: str | None, max_uses: int | None,
                 offline_keys: Path | None, root_sha256: str | None, as_json: bool) -> None:
    """Print a new enrollment token. It carries the hash of root v1 from the admin's
    offline side (offline.toml or --root-sha256), and is refused if this hub serves
    another root."""
    from hub.database import HubDatabase
    from hub.devices.enrollment import create_token
    from hub.repository.token_anchor import pinned_root_sha256
    from hub.repository.tuf_repository import HubRepository

    directory = HubDir(resolve_hub_dir(hub_dir))
    directory.require_initialized()
    pin = pinned_root_sha256(HubRepository(directory, offline_keys), offline_keys, root_sha256)
    database = HubDatabase(directory.database)
    try:
        created = create_token(
            database, pin, parse_duration(valid_for) if valid_for else None, max_uses,
            actor=admin_actor(),
        )
    finally:
        database.close()
    if as_json:
        emit_json({"token": str(created), "root_sha256": pin})
    else:
        click.echo(str(created))
        errors.print(f"root sha256 {pin} (compare with what `init` printed)",
                     markup=False, highlight=False)


@token.command("list")
@hub_dir_option
@json_option
@friendly_errors
def token_list(hub_dir: str | None, as_json: bool) -> None:
    """Every enrollment token by id, with its uses, expiry and state (never the secret)."""
    from hub.devices.enrollment import list_tokens

    with open_database(hub_dir) as database:
        tokens = list_tokens(database)
    if as_json:
        emit_json(tokens)
        return
    table = Table("id", "created", "expires", "uses", "state")
    for row in tokens:
        uses = f"{row['uses']}/{row['max_uses']}" if row["max_uses"] else str(row["uses"])
        table.add_row(row["id"], row["created_at"], row["expires_at"] or "never", uses,
                      row["state"])
    console.print(table)


@token.command("revoke")
@hub_dir_option
@click.argument("token_id")
@friendly_errors
def token_revoke(hub_dir: str | None, token_id: str) -> None:
    """Refuse every later enrollment with TOKEN_ID (from `token list`, or the token)."""
    from hub.devices.enrollment import revoke_token

    with open_database(hub_dir) as database:
        revoke_token(database, token_id, admin_actor())
    console.print("token revoked: enrollments with it are refused from now on")


@main.command()
@hub_dir_option
@click.argument("release_file", type=click.Path(path_type=Path))
@click.argument("payload", type=click.Path(path_type=Path))
@click.option("--offline-keys", type=click.Path(path_type=Path), default=None,
              help="directory holding the release key [default DIR/offline-keys]")
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def publish(hub_dir: str | None, release_file: Path, payload: Path,
            offline_keys: Path | None, as_json: bool) -> None:
    """Sign RELEASE_FILE (TOML) and PAYLOAD as a release, and make its torrent."""
    from hub.releases.publisher import publish_release

    directory = HubDir(resolve_hub_dir(hub_dir))
    with Progress(
        "[progress.description]{task.description}", BarColumn(), DownloadColumn(),
        TimeRemainingColumn(), console=errors, transient=True, disable=as_json,
    ) as bar:
        tasks: dict[str, Any] = {}

        def progress(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = bar.add_task(phase, total=total)
            bar.update(tasks[phase], completed=done, total=total)

        published = publish_release(directory, release_file, payload, offline_keys, progress,
                                    actor=admin_actor())
    if as_json:
        emit_json(published.__dict__)
        return
    console.print(f"published {published.name} {published.version}: {published.target}")
    console.print(f"  sha256 {published.sha256}  {published.length} bytes "
                  f"(hashed in {published.hash_seconds:.2f} s, torrent in "
                  f"{published.torrent_seconds:.2f} s)")
    console.print(f"  torrent v1 {published.info_hash_v1}  v2 {published.info_hash_v2}")
    console.print(f"  for standard clients: tracker {published.tracker}, web seed "
                  f"{published.web_seed}", markup=False, highlight=False)
    if not published.public_url_set:
        errors.print("hub.toml sets no [server] public_url: the torrent names the listen "
                     "address, which stock BitTorrent clients elsewhere may not reach "
                     "(agents are not affected)", style="yellow")


@main.command()
@hub_dir_option
@friendly_errors
def serve(hub_dir: str | None) -> None:
    """Serve metadata, payloads, tracker and API; seed payloads; keep metadata fresh."""
    import trio

    from hub.config import HubConfig
    from hub.serve import HubServer

    directory = HubDir(resolve_hub_dir(hub_dir))
    directory.require_initialized()
    logging.getLogger().setLevel(min(logging.getLogger().level, logging.INFO))
    from agent.log_format import use_configured_format
    from agent.shutdown import run_until_signalled

    config = HubConfig.load(directory.config_file)
    use_configured_format(config.logging.format)
    server = HubServer(directory, config)
    trio.run(run_until_signalled, server.run)


@main.command()
@hub_dir_option
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def status(hub_dir: str | None, as_json: bool) -> None:
    """Every release's rollouts and each device's result."""
    from hub.database import HubDatabase
    from hub.releases.status_report import status_report
    from hub.repository.targets_expiry import targets_expiry

    directory = HubDir(resolve_hub_dir(hub_dir))
    directory.require_initialized()
    database = HubDatabase(directory.database)
    try:
        report = status_report(database)
    finally:
        database.close()
    report["targets"] = targets_expiry(directory).as_dict()
    if as_json:
        emit_json(report)
        return
    if report["targets"]["warning"]:
        errors.print(f"warning: {report['targets']['warning']}")
    if not report["releases"]:
        console.print("no releases published yet")
    for release in report["releases"]:
        rollouts = ", ".join(
            f"{r['group']} {r['state']} {r['stage_percent']}%" for r in release["rollouts"]
        ) or "not rolled out"
        sent = release["hub_bytes_sent"]
        console.print(Text.assemble(
            (f"{release['name']} {release['version']}", "bold"),
            f" ({release['severity']}, {release['category']}) — {rollouts}; hub sent "
            f"{sent['seeder']} B by seeder, {sent['web_seed']} B by web seed for a "
            f"{release['length']} B payload",
        ))
        table = Table("device", "group", "site", "outcome", "reason", "finished")
        for device in release["devices"]:
            table.add_row(device["name"], device["group"], device["site"], device["outcome"],
                          device["reason"], device["finished_at"] or "")
        console.print(table)
        if release["sites"]:
            sites = Table("site", "devices reported", "bytes from hub", "bytes from peers",
                          "hub copies")
            for site in release["sites"]:
                copies = site["from_hub"] / release["length"] if release["length"] else 0.0
                sites.add_row(site["site"], f"{site['reported']}/{site['devices']}",
                              str(site["from_hub"]), str(site["from_peers"]), f"{copies:.2f}")
            console.print(sites)


@click.group("release")
def release_group() -> None:
    """Published releases."""


@release_group.command("list")
@hub_dir_option
@json_option
@friendly_errors
def release_list(hub_dir: str | None, as_json: bool) -> None:
    """Every published release, newest first, with what `rollout start` needs."""
    from packaging.version import Version


    with open_database(hub_dir) as database:
        rows = [dict(row) for row in database.query(
            "SELECT name, version, severity, category, length, sha256, target, published_at "
            "FROM releases")]
    rows.sort(key=lambda row: (row["name"], Version(row["version"])), reverse=True)
    if as_json:
        emit_json(rows)
        return
    if not rows:
        console.print("no releases published yet")
        return
    table = Table("release", "severity", "category", "bytes", "published", "sha256")
    for row in rows:
        table.add_row(f"{row['name']}@{row['version']}", row["severity"], row["category"],
                      str(row["length"]), row["published_at"], row["sha256"][:16])
    console.print(table)


def _register_command_groups() -> None:
    from hub.cli.audit import audit
    from hub.cli.devices import devices
    from hub.cli.rollout import rollout

    command: click.Command
    for command in (rollout, devices, audit):
        main.add_command(command)
    from hub.cli.policy import plan, policy

    for command in (policy, plan):
        main.add_command(command)
    from hub.cli.targets import targets

    main.add_command(targets)
    from hub.cli.vulns import vulns

    main.add_command(vulns)
    main.add_command(release_group)
    from hub.cli.admins import admins

    main.add_command(admins)
    from hub.cli.exceptions import exceptions
    from hub.cli.report import report

    main.add_command(report)
    main.add_command(exceptions)
    from hub.cli.evidence import evidence

    main.add_command(evidence)
    from hub.cli.compat import compat

    main.add_command(compat)
    from hub.cli.readiness import readiness

    main.add_command(readiness)


_register_command_groups()
