"""`meisitong-hub init`: a new hub directory, complete or not at all."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

from agent.atomic_file import write_atomic, write_private
from hub.database import HubDatabase
from hub.devices.enrollment import create_token
from hub.errors import HubConfigError
from hub.hub_dir import HubDir
from hub.repository.offline_record import DEFAULT_TARGETS_EXPIRY_DAYS, check_targets_expiry_days
from hub.repository.token_anchor import pinned_root_sha256
from hub.repository.tuf_repository import HubRepository, RepositoryExpiry


def render_hub_toml(listen: str, public_url: str, seed_listen: str) -> bytes:
    return (
        "# Meisitong hub configuration; see config/hub.toml in the source for every key.\n"
        f'[server]\nlisten = "{listen}"\npublic_url = "{public_url}"\n\n'
        f'[seeding]\nlisten = "{seed_listen}"\nupload_limit = 0\n'
    ).encode()


def initialize_hub(
    hub_dir: HubDir, offline_keys: Path | None, listen: str, public_url: str, seed_listen: str,
    targets_expiry_days: int = DEFAULT_TARGETS_EXPIRY_DAYS, actor: str = "init",
) -> dict[str, Any]:
    """Also writes offline.toml beside the offline keys: the root v1 hash tokens pin and
    the targets expiry (hub/repository/offline_record.py)."""
    from hub.config import HubConfig

    check_targets_expiry_days(targets_expiry_days, "--targets-expiry-days")

    if hub_dir.root.exists() and any(hub_dir.root.iterdir()):
        raise HubConfigError(f"{hub_dir.root} exists and is not empty; choose another --dir")
    config_bytes = render_hub_toml(listen, public_url, seed_listen)
    created_root = not hub_dir.root.exists()
    created_offline = offline_keys is not None and not offline_keys.exists()
    try:
        hub_dir.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_atomic(hub_dir.config_file, config_bytes)
        HubConfig.load(hub_dir.config_file)  # refuse bad --listen values before any key exists
        for directory in (hub_dir.payloads, hub_dir.targets):
            directory.mkdir(parents=True, exist_ok=True)
        repository = HubRepository.initialize(
            hub_dir, offline_keys_dir=offline_keys,
            expiry=RepositoryExpiry(targets=timedelta(days=targets_expiry_days)))
        root_v1_sha256 = pinned_root_sha256(repository, offline_keys)
        database = HubDatabase.create(hub_dir.database)
        try:
            token = create_token(database, root_v1_sha256, actor=actor)
            with database.transaction() as db:
                database.audit(db, actor, "hub.init", str(hub_dir.root))
        finally:
            database.close()
        write_private(hub_dir.enrollment_token, f"{token}\n".encode())
    except BaseException:
        if created_root:
            shutil.rmtree(hub_dir.root, ignore_errors=True)
        else:
            for child in hub_dir.root.iterdir():
                if child.is_dir():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)
        if created_offline and offline_keys is not None:
            shutil.rmtree(offline_keys, ignore_errors=True)
        raise
    return {
        "dir": str(hub_dir.root),
        "offline_keys": str(offline_keys or hub_dir.offline_keys),
        "root_sha256": root_v1_sha256,
        "targets_expiry_days": targets_expiry_days,
        "token": str(token),
    }
