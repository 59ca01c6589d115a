"""The agent's metrics pieces in-process: `[metrics]` validation (loopback only unless
allowed), the listener against hostile clients (silent, oversized, not HTTP) on real
loopback sockets, the textfile written atomically 0644 and a failing one not ending the
task, and what the exposition holds (parsed with prometheus_client's parser)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

from agent.config import AgentConfig, MetricsSection
from agent.errors import ConfigError
from agent.metrics import http_listener
from agent.metrics.agent_metrics import AgentReadings, render
from agent.metrics.exporter import MetricsExporter
from agent.metrics.http_listener import answer_request, serve_metrics
from agent.wire.validation import parse_model
from tests.fleet import free_port

READINGS = AgentReadings(deployments={"committed": 2, "scheduled": 1}, outbox_pending=3,
                         metadata_refreshed_at=1_796_000_000.0,
                         downloaded={"peers": 10, "hub-seeder": 20, "web-seed": 30},
                         uploaded=40)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def metrics_config(section: dict) -> MetricsSection:
    return parse_model(AgentConfig, {"metrics": section}, "agent.toml", ConfigError).metrics


def test_metrics_are_off_by_default_and_refuse_a_listener_off_loopback():
    assert not AgentConfig().metrics.enabled
    assert metrics_config({"listen": "127.0.0.1:9108"}).enabled
    assert metrics_config({"listen": "[::1]:9108"}).enabled
    with pytest.raises(ConfigError, match="not a loopback address.*allow_remote"):
        metrics_config({"listen": "0.0.0.0:9108"})
    with pytest.raises(ConfigError, match="not a loopback address"):
        metrics_config({"listen": "192.168.1.5:9108"})
    assert metrics_config({"listen": "0.0.0.0:9108", "allow_remote": True}).listen
    with pytest.raises(ConfigError, match="absolute path"):
        metrics_config({"textfile": "relative.prom"})
    with pytest.raises(ConfigError, match="interval"):
        metrics_config({"textfile": "/tmp/x.prom", "interval": 0})


def test_the_exposition_holds_every_lifecycle_state_channels_and_the_outbox():
    found = samples(render(READINGS).decode())
    assert found[("meisitong_agent_deployments", (("state", "committed"),))] == 2
    assert found[("meisitong_agent_deployments", (("state", "revert-failed"),))] == 0
    assert found[("meisitong_agent_outbox_pending_records", ())] == 3
    assert found[("meisitong_agent_payload_bytes_downloaded_total",
                  (("channel", "hub-seeder"),))] == 20
    assert found[("meisitong_agent_payload_bytes_uploaded_total", (("channel", "peers"),))] == 40
    assert found[("meisitong_agent_metadata_last_refresh_timestamp_seconds", ())] == 1.796e9
    # Before the first refresh there is no time to tell, rather than a false 0.
    assert not any(name.startswith("meisitong_agent_metadata_last")
                   for name, _ in samples(render(AgentReadings()).decode()))


def test_only_get_metrics_is_answered():
    def body() -> bytes:
        return b"x 1\n"

    assert answer_request(b"GET /metrics HTTP/1.1\r\nHost: a", body).startswith(
        b"HTTP/1.0 200 OK")
    assert answer_request(b"GET /metrics?x=1 HTTP/1.0", body).endswith(b"x 1\n")
    assert answer_request(b"HEAD /metrics HTTP/1.0", body).endswith(b"\r\n\r\n")
    assert answer_request(b"GET / HTTP/1.0", body).startswith(b"HTTP/1.0 404")
    assert answer_request(b"POST /metrics HTTP/1.0", body).startswith(b"HTTP/1.0 405")
    assert answer_request(b"\x00\xff garbage", body).startswith(b"HTTP/1.0 400")


async def _exchange(port: int, data: bytes) -> bytes:
    """What the listener answers to `data`; b"RESET" if it dropped the connection while
    we were still sending (as it does to an oversized request)."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    answer = b""
    async with stream:
        try:
            await stream.send_all(data)
            while chunk := await stream.receive_some(65536):
                answer += chunk
        except trio.BrokenResourceError:
            return answer or b"RESET"
    return answer


async def test_a_silent_or_oversized_client_does_not_stall_the_listener(nursery, monkeypatch):
    monkeypatch.setattr(http_listener, "REQUEST_TIMEOUT", 1.0)
    port = free_port("127.0.0.1")
    await nursery.start(serve_metrics, f"127.0.0.1:{port}", lambda: render(READINGS))
    silent = [await trio.open_tcp_stream("127.0.0.1", port) for _ in range(20)]
    with trio.fail_after(5):  # answered while twenty clients say nothing
        answer = await _exchange(port, b"GET /metrics HTTP/1.0\r\n\r\n")
    assert b"meisitong_agent_outbox_pending_records 3.0" in answer
    with trio.fail_after(5):
        oversized = await _exchange(port, b"GET /metrics HTTP/1.0\r\nX: " + b"a" * 20000)
    assert oversized.startswith((b"HTTP/1.0 400", b"RESET"))
    with trio.fail_after(5):
        assert b"meisitong_agent" in await _exchange(port, b"GET /metrics HTTP/1.0\r\n\r\n")
    with trio.fail_after(5):  # the silent ones are dropped after the request timeout
        for stream in silent:
            assert await stream.receive_some(100) == b""
            await stream.aclose()


async def test_the_textfile_is_replaced_atomically_with_mode_0644(tmp_path, autojump_clock):
    autojump_clock.autojump_threshold = 0.2  # not while a write runs in its thread
    path = tmp_path / "collector" / "meisitong.prom"
    exporter = MetricsExporter(metrics_config({"textfile": str(path), "interval": 15}),
                               lambda: READINGS)
    async with trio.open_nursery() as nursery:
        await nursery.start(exporter.run)
        assert exporter.textfile_writes == 1
        await trio.sleep(31)
        nursery.cancel_scope.cancel()
    assert exporter.textfile_writes == 4  # at start, twice in 31 s, at stop
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert samples(path.read_text())[("meisitong_agent_outbox_pending_records", ())] == 3
    assert sorted(p.name for p in path.parent.iterdir()) == ["meisitong.prom"]


async def test_an_unwritable_textfile_is_logged_and_retried_not_fatal(
        tmp_path, autojump_clock, caplog):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    exporter = MetricsExporter(
        metrics_config({"textfile": str(blocker / "m.prom"), "interval": 1}), lambda: READINGS)
    with trio.move_on_after(5.5):
        await exporter.run()
    assert exporter.textfile_writes == 0
    warnings = [r for r in caplog.records if "cannot write metrics textfile" in r.message]
    assert warnings and warnings[0].levelname == "WARNING"
    assert sum(r.levelname == "WARNING" for r in warnings) == 1  # said once, then quieter
    assert Path(blocker).read_text() == ""
