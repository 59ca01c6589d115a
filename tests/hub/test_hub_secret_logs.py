"""The hub seeder's tracker secret (`hub=` in its tracker URL) never reaches a log, even
at DEBUG (`serve -vv`): libtorrent's tracker alerts quote the URL, secret included. A
real served hub on loopback, its announces real, its log captured whole."""

from __future__ import annotations

import logging

import trio

from hub.swarm.seeder import redact
from tests.fleet import start_hub


async def test_hub_secret_is_redacted_from_every_log_line_at_debug(tmp_path, nursery, caplog):
    caplog.set_level(logging.DEBUG)
    hub = await start_hub(tmp_path, nursery, hub_toml="[tracker]\ninterval = 5\n")
    assert hub.server is not None
    secret = hub.server.swarms._hub_key
    assert secret
    hub.publish("app", "1.0.0", {"a.txt": b"x" * 100_000})
    with trio.fail_after(20):  # the seeder's first announces, and one re-announce
        while caplog.text.count("hub=***") < 4:
            await trio.sleep(0.25)
    assert secret not in caplog.text


def test_redact_replaces_every_occurrence():
    assert redact("a?hub=K&x=K", ("K",)) == "a?hub=***&x=***"
