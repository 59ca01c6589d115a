"""`meisitong-hub targets …`: the offline-signed targets metadata's lifetime.

`resign` runs where the offline keys are (it needs the release key); `status` anywhere.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import click

from hub.cli.common import (
    admin_actor,
    console,
    emit_json,
    errors,
    friendly_errors,
    hub_dir_option,
    initialized_hub,
)


@click.group()
def targets() -> None:
    """The offline-signed targets metadata (releases, policies, assignments)."""


@targets.command("resign")
@hub_dir_option
@click.option("--offline-keys", type=click.Path(path_type=Path), default=None,
              help="directory holding the release key and offline.toml "
              "[default DIR/offline-keys]")
@click.option("--expiry-days", type=int, default=None,
              help="change the lifetime kept in offline.toml first (1-365 days)")
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def resign(hub_dir: str | None, offline_keys: Path | None, expiry_days: int | None,
           as_json: bool) -> None:
    """Re-sign the targets metadata as it is, valid for offline.toml's lifetime from now.

    Run it offline (with the release key) before `targets status` says it expires."""
    from hub.database import HubDatabase
    from hub.repository.offline_record import OfflineRecord, check_targets_expiry_days
    from hub.repository.targets_expiry import targets_expiry
    from hub.repository.tuf_repository import HubRepository

    directory = initialized_hub(hub_dir)
    keys_dir = offline_keys or directory.offline_keys
    record = OfflineRecord.load(keys_dir)
    if expiry_days is not None:
        check_targets_expiry_days(expiry_days, "--expiry-days")
    repository = HubRepository(directory, offline_keys_dir=keys_dir)
    if expiry_days is not None and expiry_days != record.targets_expiry_days:
        repository.keys.load("targets")  # no key here: change nothing, not even the record
        replace(record, targets_expiry_days=expiry_days).write(keys_dir)
    repository.resign_targets()
    expiry = targets_expiry(directory, keys_dir)
    database = HubDatabase(directory.database)
    try:
        with database.transaction() as db:
            database.audit(db, admin_actor(), "targets.resign", f"targets v{expiry.version}",
                           expires=expiry.as_dict()["expires"],
                           lifetime_days=expiry.lifetime_days)
    finally:
        database.close()
    if as_json:
        emit_json(expiry.as_dict())
        return
    console.print(f"targets v{expiry.version} signed, expires "
                  f"{expiry.expires.isoformat(timespec='seconds')} "
                  f"({expiry.lifetime_days} days)")


@targets.command("status")
@hub_dir_option
@click.option("--offline-keys", type=click.Path(path_type=Path), default=None,
              help="where offline.toml is, to show the chosen lifetime")
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def status(hub_dir: str | None, offline_keys: Path | None, as_json: bool) -> None:
    """When the targets metadata expires; warns from 3 days before."""
    from hub.repository.targets_expiry import targets_expiry

    expiry = targets_expiry(initialized_hub(hub_dir), offline_keys)
    if as_json:
        emit_json(expiry.as_dict())
        return
    lifetime = (f"{expiry.lifetime_days} days" if expiry.lifetime_days is not None
                else "lifetime in offline.toml, not on this server")
    console.print(f"targets v{expiry.version} expires "
                  f"{expiry.expires.isoformat(timespec='seconds')} (in {expiry.days_left:.1f} "
                  f"days; {lifetime})")
    if expiry.warning:
        errors.print(f"warning: {expiry.warning}")
