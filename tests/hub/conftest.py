"""Fixtures of the hub's tests: a hub made by `meisitong-hub init`, and one serving its
device API over real HTTP (Hypercorn's trio worker, an httpx client)."""

from __future__ import annotations

import httpx
import pytest
import trio
from click.testing import CliRunner
from hypercorn.config import Config
from hypercorn.trio import serve

from hub.api.web_app import make_app
from hub.cli.main import main
from hub.database import HubDatabase
from hub.devices.enrollment import create_token
from hub.hub_dir import HubDir


@pytest.fixture
def initialized_hub_dir(tmp_path):
    """The directory of a hub made by `meisitong-hub init` (keys, repository, database)."""
    directory = tmp_path / "hub"
    result = CliRunner().invoke(main, ["init", "--dir", str(directory), "--json"])
    assert result.exit_code == 0, result.output
    return directory


@pytest.fixture
async def api_hub(tmp_path, nursery):
    """The device API (no TUF repository) on 127.0.0.1: (client, token, hub_dir)."""
    hub_dir = HubDir(tmp_path / "hub")
    hub_dir.root.mkdir()
    database = HubDatabase.create(hub_dir.database)
    token = create_token(database, "ab" * 32)
    database.close()
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    shutdown = trio.Event()
    binds = await nursery.start(
        lambda task_status: serve(make_app(hub_dir), config, shutdown_trigger=shutdown.wait,
                                  task_status=task_status)
    )
    async with httpx.AsyncClient(base_url=binds[0]) as client:
        yield client, token, hub_dir
    shutdown.set()
