"""`GET /metrics` of a real `meisitong-hub serve` process (tests/processes.py), read with
prometheus_client's own parser: a device's result moves the counter, request latencies
are a histogram per route template whose labels stay bounded when a client asks for
hundreds of random paths, database gauges follow what the CLI (another process) does,
the bearer token is asked for, and the JSON log lines (at -vv) parse and hold neither
the tracker secret, the enrollment token, nor the metrics token."""

from __future__ import annotations

import base64
import json
import random
import re
import string
import time
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.device_identity import DeviceIdentity
from agent.wire.enrollment import EnrollmentToken, EnrollRequest
from agent.wire.result import Outcome, ResultRecord, SignedResult
from tests.e2e._metrics import scrape, value
from tests.fleet import tar_bytes
from tests.processes import BIN_HUB, Fleet, free_port, reachable, wait_for

pytestmark = pytest.mark.slow

ADDRESS = "127.0.0.1"
METRICS_TOKEN = "metrics-" + "k" * 32
RELEASE = """name = "app"
version = "1.0.0"
severity = "important"
category = "application"

[install]
type = "file-tree"
root = "/opt/app"
"""


def serve_hub(tmp_path: Path) -> tuple[Fleet, str]:
    port = free_port(ADDRESS)
    fleet = Fleet(tmp_path, tmp_path / "hub", f"http://{ADDRESS}:{port}")
    fleet.command(BIN_HUB, "init", "--listen", f"{ADDRESS}:{port}",
                  "--seed-listen", f"{ADDRESS}:{free_port(ADDRESS)}")
    token_file = tmp_path / "metrics-token"
    token_file.write_text(METRICS_TOKEN + "\n")
    with (fleet.hub_dir / "hub.toml").open("a") as config:
        config.write(f'\n[metrics]\nbearer_token_file = "{token_file}"\n'
                     '[logging]\nformat = "json"\n[tracker]\ninterval = 5\n')
    fleet.start("hub", BIN_HUB, "-vv", "serve", "--dir", str(fleet.hub_dir))
    wait_for(lambda: reachable(ADDRESS, port), 30, "the hub to listen")
    return fleet, (fleet.hub_dir / "enrollment-token").read_text().strip()


def enroll_and_report(url: str, token_text: str) -> DeviceIdentity:
    identity = DeviceIdentity(Ed25519PrivateKey.generate())
    token = EnrollmentToken.parse(token_text)
    request = EnrollRequest(
        token_secret=token.secret, device_id=identity.device_id,
        public_key=base64.b64encode(identity.public_key_raw).decode(),
        name="laptop-1", hostname="laptop-1", group="lab", site="berlin",
    ).signed_with(identity.private_key)
    enrolled = httpx.post(f"{url}/api/v1/enroll", json=request.model_dump(), timeout=10)
    assert enrolled.status_code == 200, enrolled.text
    record = ResultRecord(
        record_id="6a0c8c6e-8a4e-4b38-9d1e-2a9a3f9c0001", device_id=identity.device_id,
        release="releases/app/1.0.0/app.tar", name="app", version="1.0.0",
        outcome=Outcome.INSTALLED, started_at="2026-11-25T00:00:00+00:00",
        finished_at="2026-11-25T00:01:00+00:00")
    body = SignedResult.sign(record, identity.private_key).to_bytes()
    for expected in (201, 200):  # stored, then a retry's copy
        answer = httpx.post(f"{url}/api/v1/results", content=body, timeout=10)
        assert answer.status_code == expected, answer.text
    return identity


def test_hub_metrics_count_results_bound_route_labels_follow_the_cli_and_log_json(
        tmp_path: Path) -> None:
    fleet, token_text = serve_hub(tmp_path)
    url = fleet.hub_url
    try:
        refused = httpx.get(f"{url}/metrics", timeout=10)
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith("Bearer")
        wrong = httpx.get(f"{url}/metrics", headers={"Authorization": "Bearer nope"},
                          timeout=10)
        assert wrong.status_code == 401

        before = scrape(url, METRICS_TOKEN)
        assert value(before, "meisitong_hub_results_ingested_total", outcome="installed") == 0
        assert value(before, "meisitong_hub_build_info") == 1

        enroll_and_report(url, token_text)
        time.sleep(1.1)  # database gauges are cached for a second
        after = scrape(url, METRICS_TOKEN)
        assert value(after, "meisitong_hub_results_ingested_total", outcome="installed") == 1
        assert value(after, "meisitong_hub_results_duplicate_total") == 1
        assert value(after, "meisitong_hub_devices", status="accepted", presence="online") == 1
        assert value(after, "meisitong_hub_http_request_duration_seconds_count",
                     route="/api/v1/results", method="POST", status="201") == 1
        assert value(after, "meisitong_hub_http_request_duration_seconds_bucket",
                     route="/api/v1/results", method="POST", status="200", le="+Inf") == 1

        # A scanner: hundreds of random paths and odd methods add no series.
        rng = random.Random(7)
        with httpx.Client(timeout=10) as client:
            for number in range(300):
                path = "/" + "/".join("".join(rng.choices(string.ascii_letters, k=8))
                                      for _ in range(rng.randint(1, 4)))
                method = rng.choice(["GET", "POST", f"X{number}", "DELETE"])
                client.request(method, url + path)
        scanned = scrape(url, METRICS_TOKEN)
        requests = scanned["meisitong_hub_http_request_duration_seconds"]
        routes = {sample.labels["route"] for sample in requests}
        methods = {sample.labels["method"] for sample in requests}
        assert routes <= {"unmatched", "/metrics", "/api/v1/enroll", "/api/v1/results",
                          "/announce", "/metadata", "/payloads", "/targets"}, routes
        assert methods <= {"GET", "POST", "DELETE", "other"}, methods
        assert value(scanned, "meisitong_hub_http_request_duration_seconds_count",
                     route="unmatched", method="other", status="404") > 50
        series = {tuple(sorted(s.labels.items())) for s in requests if s.name.endswith("_count")}
        assert len(series) < 25, series

        # The CLI changes the database from another process; the next scrape shows it
        # (gauges are read at scrape time, cached for a second only).
        fleet.command(BIN_HUB, "devices", "remove", "laptop-1")
        payload = tmp_path / "app.tar"
        payload.write_bytes(tar_bytes({"v.txt": b"v1" * 5000}))
        (tmp_path / "RELEASE.toml").write_text(RELEASE)
        published = json.loads(fleet.command(
            BIN_HUB, "publish", str(tmp_path / "RELEASE.toml"), str(payload), "--json").stdout)
        fleet.command(BIN_HUB, "rollout", "start", "app", "--group", "lab", "--stages", "100")
        time.sleep(1.1)
        changed = scrape(url, METRICS_TOKEN)
        assert value(changed, "meisitong_hub_devices", status="removed", presence="online") == 1
        assert value(changed, "meisitong_hub_devices", status="accepted") == 0
        assert value(changed, "meisitong_hub_rollouts", state="active", stage_percent="100") == 1

        # The web seed's bytes, and the seeder's announces to the hub's tracker.
        served = wait_for(lambda: httpx.get(f"{url}/payloads/{published['target']}",
                                            timeout=10).content or None, 20, "the web seed")
        assert len(served) == published["length"]
        def announced() -> dict[str, list] | None:
            families = scrape(url, METRICS_TOKEN)
            accepted = value(families, "meisitong_hub_tracker_announces_total",
                             result="accepted")
            return families if accepted >= 1 else None

        seeded = wait_for(announced, 30, "the seeder's first announce")
        assert value(seeded, "meisitong_hub_payload_bytes_sent_total",
                     channel="web-seed") == published["length"]
        assert value(seeded, "meisitong_hub_tracker_swarms") >= 1  # v1 and v2 hashes
        assert value(seeded, "meisitong_hub_http_request_duration_seconds_count",
                     route="/payloads", method="GET", status="200") == 1
    finally:
        fleet.stop_all()

    lines = (tmp_path / "hub.log").read_text().splitlines()
    entries = [json.loads(line) for line in lines if line.strip()]
    assert entries, "the hub logged nothing"
    for entry in entries:
        assert {"time", "level", "logger", "message"} <= entry.keys(), entry
    assert any(entry["level"] == "DEBUG" for entry in entries)  # -vv reached the log
    text = "\n".join(lines)
    assert "hub=***" in text  # the seeder's tracker alerts were logged, redacted
    assert not re.search(r"hub=(?!\*\*\*)", text), "the tracker secret reached the log"
    assert EnrollmentToken.parse(token_text).secret not in text
    assert METRICS_TOKEN not in text
