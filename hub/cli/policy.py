"""`meisitong-hub policy …` and `plan`: group policies and the install forecast."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click
from rich.table import Table

from hub.cli.common import (
    admin_actor,
    console,
    emit_json,
    friendly_errors,
    hub_dir_option,
    initialized_hub,
    json_option,
    open_database,
)


@click.group()
def policy() -> None:
    """Group policies: windows, deadlines, deferral, blocklist, pause, disruption budget."""


@policy.command("set")
@hub_dir_option
@click.argument("group")
@click.argument("policy_file", type=click.Path(path_type=Path))
@click.option("--offline-keys", type=click.Path(path_type=Path), default=None,
              help="directory holding the release key [default DIR/offline-keys]")
@click.option("--dry-run", is_flag=True, help="validate only: publish, sign and audit nothing")
@json_option
@friendly_errors
def policy_set(hub_dir: str | None, group: str, policy_file: Path, offline_keys: Path | None,
               dry_run: bool, as_json: bool) -> None:
    """Validate POLICY_FILE (TOML) and publish it, signed, as GROUP's policy."""
    from hub.policy.policies import set_policy

    stored = set_policy(initialized_hub(hub_dir), group, policy_file, offline_keys,
                        actor=admin_actor(), dry_run=dry_run)
    if as_json:
        emit_json({"group": group, "sha256": stored.sha256, "set_at": stored.set_at,
                   "published": not dry_run})
    elif dry_run:
        console.print(f"{policy_file}: valid policy for group {group} "
                      f"(sha256 {stored.sha256[:16]}); nothing published (--dry-run)")
    else:
        console.print(f"policy of group {group} published: policies/{group}.toml "
                      f"sha256 {stored.sha256[:16]}")


@policy.command("show")
@hub_dir_option
@click.argument("group")
@json_option
@friendly_errors
def policy_show(hub_dir: str | None, group: str, as_json: bool) -> None:
    """Print GROUP's policy as it was set, and the leases its devices hold now."""
    from hub.errors import HubError
    from hub.policy.leases import held_leases
    from hub.policy.policies import stored_policy

    with open_database(hub_dir) as database:
        stored = stored_policy(database, group)
        leases = [lease for lease in held_leases(database, datetime.now(UTC))
                  if lease["grp"] == group]
    if stored is None:
        raise HubError(f"group {group!r} has no policy (set one with `policy set`)")
    if as_json:
        emit_json({"group": group, "toml": stored.text, "sha256": stored.sha256,
                   "set_at": stored.set_at, "set_by": stored.set_by, "leases": leases})
        return
    console.print(f"# policies/{group}.toml  sha256 {stored.sha256[:16]}  set {stored.set_at} "
                  f"by {stored.set_by}", highlight=False, markup=False)
    click.echo(stored.text, nl=not stored.text.endswith("\n"))
    for lease in leases:
        console.print(f"# lease held by {lease['device_id']} for {lease['release']} until "
                      f"{lease['expires_at']}", highlight=False, markup=False)


@click.command("plan")
@hub_dir_option
@click.argument("release")
@click.option("--install-minutes", type=click.FloatRange(min=0), default=10.0,
              show_default=True, help="how long one device installs (holds its lease)")
@click.option("--stale-days", type=click.FloatRange(min=0), default=14.0, show_default=True,
              help="devices not seen for this long are not counted on")
@json_option
@friendly_errors
def plan(hub_dir: str | None, release: str, install_minutes: float, stale_days: float,
         as_json: bool) -> None:
    """Forecast when each group reaches 50/90/98/100 % installed of RELEASE."""
    from hub.policy.forecast import THRESHOLDS, forecast_release

    initialized_hub(hub_dir)
    with open_database(hub_dir) as database:
        report = forecast_release(database, release, datetime.now(UTC), install_minutes,
                                  stale_days)
    if as_json:
        emit_json(report)
        return
    table = Table("group", "devices", "rollout", *(f"{p} %" for p in THRESHOLDS))
    for group in report["groups"]:
        table.add_row(group["group"], str(group["devices"]), group["rollout"],
                      *(_when(group["reach"][str(p)]) for p in THRESHOLDS))
    console.print(f"forecast for {report['release']} (installs take {install_minutes:g} min)")
    console.print(table)
    for group in report["groups"]:
        for device, why in group["never"].items():
            console.print(f"  {group['group']}: {device} will not install: {why}",
                          highlight=False)


def _when(text: str | None) -> str:
    if text is None:
        return "never"
    return datetime.fromisoformat(text).strftime("%a %Y-%m-%d %H:%M UTC")
