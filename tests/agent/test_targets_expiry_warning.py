"""`meisitong-agent status` warns 3 days before the targets metadata the device trusts
expires (issue 12, attack 2: targets now expire after 14 days by default, so a fleet
that stops installing because nobody re-signed must not come as a surprise).

Real hub (in-process HubServer over HTTP, real TUF metadata and keys) and real daemon.
"""

from __future__ import annotations

import trio
from click.testing import CliRunner

from agent.cli import main as agent_main
from hub.repository.offline_record import OfflineRecord
from hub.repository.tuf_repository import HubRepository
from tests.fleet import start_agent, start_hub


def status(config_file) -> str:
    result = CliRunner().invoke(agent_main, ["status", "--config", str(config_file)])
    assert result.exit_code == 0, result.output
    return result.output


async def test_status_warns_only_within_three_days_of_the_targets_expiry(tmp_path, nursery):
    hub = await start_hub(tmp_path, nursery)
    daemon, _ = await start_agent(hub, nursery, "desk", "127.0.0.2")
    await daemon.cycle()
    assert "warning" not in status(tmp_path / "desk/agent.toml")  # 14 days left
    # The admin chose 2 days and re-signed: the device warns.
    record = OfflineRecord.load(hub.hub_dir.offline_keys)
    OfflineRecord(record.root_v1_sha256, 2).write(hub.hub_dir.offline_keys)
    HubRepository(hub.hub_dir).resign_targets()
    await daemon.cycle()
    warning = next(line for line in status(tmp_path / "desk/agent.toml").splitlines()
                   if line.startswith("warning "))
    assert "targets metadata expires at" in warning and "(in 2.0 days)" in warning
    assert "meisitong-hub targets resign" in warning
    nursery.cancel_scope.cancel()
    await trio.sleep(0)
