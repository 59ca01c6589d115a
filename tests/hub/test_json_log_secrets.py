"""A served hub logging JSON at DEBUG (what `serve -vv --log-format json` writes) never
writes the seeder's tracker secret nor an enrollment token, and every line parses. Real
hub on loopback, its seeder announcing for real, an agent enrolling with the token."""

from __future__ import annotations

import io
import json
import logging

import trio

from agent.log_format import JsonFormatter
from agent.wire.enrollment import EnrollmentToken
from tests.fleet import start_agent, start_hub


async def test_json_logs_at_debug_hold_neither_the_tracker_secret_nor_the_token(
        tmp_path, nursery):
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        hub = await start_hub(tmp_path, nursery, hub_toml="[tracker]\ninterval = 5\n")
        assert hub.server is not None
        secret = hub.server.swarms._hub_key
        await start_agent(hub, nursery, "box", "127.0.0.2")
        hub.publish("app", "1.0.0", {"a.txt": b"x" * 100_000})
        with trio.fail_after(20):  # the seeder's first announces, and one re-announce
            while out.getvalue().count("hub=***") < 4:
                await trio.sleep(0.25)
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    text = out.getvalue()
    entries = [json.loads(line) for line in text.splitlines()]
    assert any(entry["logger"].startswith("hub.") for entry in entries)
    assert secret and secret not in text
    token = EnrollmentToken.parse(hub.token)
    assert token.secret not in text and str(token) not in text
