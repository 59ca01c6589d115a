"""`meisitong-agent`: enroll this endpoint, run the daemon, show what it is doing."""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from agent.config import DEFAULT_CONFIG_FILE, AgentConfig
from agent.errors import AgentError
from agent.log_format import LogFormat, configure_logging, use_configured_format

F = TypeVar("F", bound=Callable[..., Any])


def config_option(command: F) -> F:
    return click.option(
        "--config", "config_file", type=click.Path(path_type=Path),
        default=DEFAULT_CONFIG_FILE, show_default=True, help="agent configuration file",
    )(command)


def friendly_errors(command: F) -> F:
    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except AgentError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


@click.group()
@click.version_option(package_name="meisitong", prog_name="meisitong-agent")
@click.option("-v", "--verbose", count=True, help="more log output (-vv for debug)")
@click.option("--log-format", type=click.Choice(["text", "json"]), default=None,
              help="log lines as text, or one JSON object each [default: the config's "
              "[logging] format for run, else text]")
def main(verbose: int, log_format: LogFormat | None) -> None:
    """Meisitong endpoint agent."""
    configure_logging(logging.WARNING - 10 * verbose, log_format)


@main.command()
@config_option
@click.option("--hub", "hub_url", default=None, help="hub URL [default: hub.url of the config]")
@click.option("--token", required=True, envvar="MEISITONG_ENROLL_TOKEN",
              help="from `meisitong-hub token create` [env MEISITONG_ENROLL_TOKEN]")
@friendly_errors
def enroll(config_file: Path, hub_url: str | None, token: str) -> None:
    """Trust the hub's root (checked against the token), create the device key, register."""
    import trio

    from agent.enrollment_flow import enroll as run_enroll

    config = AgentConfig.load(config_file)
    url = hub_url or config.hub_url
    if not url:
        raise click.UsageError("no hub URL: pass --hub or set [hub] url in the config")
    device_id, status = trio.run(run_enroll, config, url, token)
    click.echo(f"enrolled as {device_id} at {url}: {status}")


@main.command()
@config_option
@friendly_errors
def run(config_file: Path) -> None:
    """Run the daemon (in the foreground; systemd runs it as a service)."""
    import trio

    from agent.daemon import AgentDaemon

    config = AgentConfig.load(config_file)
    use_configured_format(config.logging.format)
    logging.getLogger().setLevel(min(logging.getLogger().level, logging.INFO))
    # urllib3 (under python-tuf) warns at each retry of a refused connection, three lines
    # per file every poll while the hub is down; the daemon says so once itself, and
    # `status` says since when (agent/hub_contact.py).
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
    from agent.shutdown import run_until_signalled

    trio.run(run_until_signalled, AgentDaemon(config).run)


@main.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@friendly_errors
def status(config_file: Path, as_json: bool) -> None:
    """What the daemon is doing, and the history of deployments."""
    from datetime import UTC, datetime

    from agent.hub_contact import (
        HUB_CONTACT_KEY,
        METADATA_SOURCE_KEY,
        describe_hub,
        describe_source,
    )
    from agent.journal import Journal
    from agent.metadata_expiry import targets_expiry_warning
    from agent.state_dir import StateDir

    config = AgentConfig.load(config_file)
    state = StateDir(config.agent.state_dir)
    enrollment = state.read_enrollment()
    journal = Journal(state.journal)
    try:
        delivered, waiting = journal.outbox_counts()
        report: dict[str, Any] = {
            "device_id": enrollment["device_id"],
            "hub_url": enrollment["hub_url"],
            "group": config.agent.group,
            "site": config.agent.site,
            "status": {key: value for key, (value, _at) in journal.status().items()},
            "results": {"delivered": delivered, "waiting": waiting},
            "deployments": [
                {
                    "release": d.release,
                    "version": d.version,
                    "state": d.state.value,
                    "reason": d.reason,
                    "updated_at": d.updated_at,
                    "transitions": [
                        {"from": f, "to": t, "reason": r, "at": at}
                        for f, t, r, at in journal.transitions(d.release)
                    ],
                }
                for d in journal.deployments()
            ],
        }
    finally:
        journal.close()
    # Per pending release: its next eligible time and why (journaled by agent/policy/gate).
    report["plans"] = json.loads(report["status"].pop("plans", "") or "{}")
    # Whether the hub answers, and where the metadata in use came from (agent/hub_contact).
    for key in (HUB_CONTACT_KEY, METADATA_SOURCE_KEY):
        report[key] = _json_entry(report["status"].pop(key, ""))
    report["targets_expiry_warning"] = targets_expiry_warning(state.metadata,
                                                              datetime.now(UTC))
    if as_json:
        click.echo(json.dumps(report, indent=2, sort_keys=True))
        return
    click.echo(f"device {report['device_id']}  group {report['group']}  site {report['site']}")
    click.echo(f"hub      {report['hub_url']}: {describe_hub(report[HUB_CONTACT_KEY])}")
    for key in ("daemon", "activity", "metadata", "hold", "inventory", "last_error", "alert"):
        if report["status"].get(key):
            click.echo(f"{key:<8} {report['status'][key]}")
        if key == "metadata":
            click.echo(f"source   {describe_source(report[METADATA_SOURCE_KEY])}")
    if report["targets_expiry_warning"]:
        click.echo(f"warning  {report['targets_expiry_warning']}")
    click.echo(f"results delivered {delivered}, waiting {waiting}")
    for d in report["deployments"]:
        click.echo(f"  {d['updated_at']}  {d['state']:<13} {d['release']}  {d['reason']}")
    if report["status"].get("policy"):
        click.echo(f"policy   {report['status']['policy']}")
    for release, plan in sorted(report["plans"].items()):
        click.echo(f"  {release}  {plan['text']}")


def _json_entry(value: str) -> dict[str, Any]:
    try:
        entry = json.loads(value) if value else {}
    except ValueError:
        return {}
    return entry if isinstance(entry, dict) else {}


@main.command()
@config_option
@click.argument("release", required=False)
@click.option("--keep-snapshot", is_flag=True,
              help="keep the failed deployment's snapshot (default: delete it)")
@click.option("--by", default="admin", show_default=True, help="who clears (journaled)")
@friendly_errors
def clear(config_file: Path, release: str | None, keep_snapshot: bool, by: str) -> None:
    """Allow installs again after a failed revert, once an admin has checked the device.

    A revert that fails (or whose result cannot be verified) blocks every further
    install on this device. RELEASE names the deployment to clear; without it, all
    blocking ones are cleared.
    """
    import shutil

    from agent.deployment_files import deployment_key
    from agent.journal import Journal
    from agent.snapshots import FileTreeSnapshot, SnapshotManifest, backend_for_manifest
    from agent.state_dir import StateDir

    config = AgentConfig.load(config_file)
    state = StateDir(config.agent.state_dir)
    journal = Journal(state.journal)
    try:
        blocking = journal.blocking()
        chosen = [d for d in blocking if release in (None, d.release)]
        if not chosen:
            names = ", ".join(d.release for d in blocking) or "none"
            raise click.ClickException(
                f"no failed revert to clear{f' for {release}' if release else ''} "
                f"(blocking: {names})"
            )
        for deployment in chosen:
            journal.clear(deployment.release, by)
            key = deployment_key(deployment.release)
            where = deployment.detail.snapshot
            if where and not keep_snapshot:
                manifest = SnapshotManifest.from_json(where)
                backend_for_manifest(manifest, FileTreeSnapshot()).discard(manifest)
                shutil.rmtree(state.snapshots / key, ignore_errors=True)
                shutil.rmtree(state.work / key, ignore_errors=True)
            click.echo(f"cleared {deployment.release} (revert failed: {deployment.reason})")
        left = journal.blocking()  # the journal's clear rewrote the alert from these
        click.echo("installs allowed again" if not left else
                   f"still blocked by {', '.join(d.release for d in left)}")
    finally:
        journal.close()
