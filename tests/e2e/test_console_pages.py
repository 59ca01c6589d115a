"""The console's pages against a real `meisitong-hub serve` process over HTTP (issue 13
item 1): every page and its JSON rendered from real devices, a real published release,
a real rollout and device-signed results; the rollout page's server-sent events deliver
a changed count within a second of a result being ingested; the admin's pause, resume,
advance and abort change the rollout and are audited as `admin:NAME`; an auditor reads
everything and changes nothing."""

from __future__ import annotations

import base64
import json
import re
import sqlite3
import subprocess
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from urllib.parse import quote

import httpx
import pytest
import trio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.device_identity import DeviceIdentity
from agent.rollout_selection import rollout_bucket
from agent.wire.enrollment import EnrollmentToken, EnrollRequest
from agent.wire.result import ResultRecord, SignedResult
from tests.fleet import tar_bytes
from tests.processes import BIN_HUB, Fleet, free_port

pytestmark = pytest.mark.slow

PASSWORD = "correct horse battery"
RELEASE_TOML = """name = "app"
version = "1.0.0"
severity = "critical"
category = "application"
[install]
type = "file-tree"
root = "/opt/app"
"""
TARGET = "releases/app/1.0.0/app.tar"
STAGES = (50, 100)


class Hub:
    def __init__(self, fleet: Fleet, devices: dict[str, DeviceIdentity]) -> None:
        self.fleet = fleet
        self.devices = devices  # name -> identity
        self.url = fleet.hub_url

    def stage_of(self, name: str) -> int:
        bucket = rollout_bucket(self.devices[name].device_id, TARGET)
        return next(index for index, percent in enumerate(STAGES) if bucket < percent)

    def in_stage(self, stage: int) -> list[str]:
        return [name for name in self.devices
                if name.startswith("lab") and self.stage_of(name) == stage]

    def db(self) -> sqlite3.Connection:
        return sqlite3.connect(self.fleet.hub_dir / "hub.db")

    def audit(self, action: str) -> list[tuple[str, str, str]]:
        with self.db() as db:
            return db.execute("SELECT actor, subject, detail FROM audit WHERE action = ? "
                              "ORDER BY id", (action,)).fetchall()

    def rollout_state(self) -> tuple[str, int]:
        with self.db() as db:
            return db.execute("SELECT state, stage_percent FROM rollouts").fetchone()


def lab_identities(first: int = 7, second: int = 5) -> list[DeviceIdentity]:
    """Device keys of which `first` fall in the rollout's first stage and `second` in
    the second (a device's stage follows from its id, which follows from its key)."""
    stages: list[list[DeviceIdentity]] = [[], []]
    while len(stages[0]) < first or len(stages[1]) < second:
        identity = DeviceIdentity(Ed25519PrivateKey.generate())
        stage = 0 if rollout_bucket(identity.device_id, TARGET) < STAGES[0] else 1
        if len(stages[stage]) < (first, second)[stage]:
            stages[stage].append(identity)
    return [identity for pair in zip(stages[0], stages[1] + [None] * first, strict=False)
            for identity in pair if identity is not None]


def enroll(client: httpx.Client, token: EnrollmentToken, name: str, group: str,
           site: str, identity: DeviceIdentity | None = None) -> DeviceIdentity:
    identity = identity or DeviceIdentity(Ed25519PrivateKey.generate())
    request = EnrollRequest(
        token_secret=token.secret, device_id=identity.device_id,
        public_key=base64.b64encode(identity.public_key_raw).decode(),
        name=name, hostname=f"{name}.example", group=group, site=site,
    ).signed_with(identity.private_key)
    answer = client.post("/api/v1/enroll", json=request.model_dump(mode="json"))
    assert answer.status_code == 200 and answer.json()["status"] == "accepted", answer.text
    return identity


def signed_result(identity: DeviceIdentity, outcome: str, reason: str = "") -> bytes:
    now = datetime.now(UTC).isoformat(timespec="seconds")
    record = ResultRecord(
        record_id=str(uuid.uuid4()), device_id=identity.device_id, release=TARGET,
        name="app", version="1.0.0", outcome=outcome, reason=reason, started_at=now,
        finished_at=now, bytes_from_peers=1234, bytes_from_hub=56)
    return SignedResult.sign(record, identity.private_key).to_bytes()


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("console-pages")
    fleet = Fleet(workdir, workdir / "hub", f"http://127.0.0.1:{free_port('127.0.0.1')}")
    try:
        token = EnrollmentToken.parse(fleet.serve_new_hub())
        for name, role in (("alice", "admin"), ("audrey", "auditor")):
            subprocess.run([BIN_HUB, "admins", "add", name, "--role", role,
                            "--password-stdin", "--dir", str(fleet.hub_dir)],
                           input=PASSWORD + "\n", text=True, check=True,
                           capture_output=True, timeout=60)
        (workdir / "RELEASE.toml").write_text(RELEASE_TOML)
        (workdir / "app.tar").write_bytes(tar_bytes({"VERSION": b"1.0.0"}))
        fleet.command(BIN_HUB, "publish", str(workdir / "RELEASE.toml"),
                      str(workdir / "app.tar"))
        devices = {}
        with httpx.Client(base_url=fleet.hub_url, timeout=30) as client:
            for n, identity in enumerate(lab_identities()):
                name = f"lab{n:02d}"
                devices[name] = enroll(client, token, name, "lab",
                                       "north" if n % 2 else "south", identity)
            for n in range(3):
                devices[f"ops{n}"] = enroll(client, token, f"ops{n}", "ops", "south")
        fleet.command(BIN_HUB, "rollout", "start", "app", "--group", "lab", "--stages",
                      ",".join(map(str, STAGES)))
        served = Hub(fleet, devices)
        assert (len(served.in_stage(0)), len(served.in_stage(1))) == (7, 5)
        yield served
    except BaseException:
        for log in sorted(workdir.glob("*.log")):
            print(f"--- {log.name}\n" + log.read_text(errors="replace")[-3000:])
        raise
    finally:
        fleet.stop_all()


@asynccontextmanager
async def browser(hub: Hub, name: str) -> AsyncIterator[httpx.AsyncClient]:
    """A logged-in client that sends the hub's Origin, as a browser does."""
    async with httpx.AsyncClient(base_url=hub.url, headers={"origin": hub.url},
                                 timeout=30) as client:
        login = await client.post("/console/login", data={
            "name": name, "password": PASSWORD, "next": "/console/overview"})
        assert login.status_code == 303, login.text
        yield client


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf-token" content="([^"]+)"', page)
    assert found
    return found.group(1)


def text_of(page: str, element_id: str) -> str:
    found = re.search(rf'id="{re.escape(element_id)}"[^>]*>([^<]*)<', page)
    assert found, f"no element {element_id!r}"
    return found.group(1).strip()


ROLLOUT_PAGE = f"/console/rollouts/lab/{TARGET}"
ROLLOUT_API = f"/console/api/rollouts/lab/{TARGET}"
EVENTS = f"/console/api/events/rollouts/lab/{TARGET}"


async def post_result(hub: Hub, name: str, outcome: str, reason: str = "") -> None:
    async with httpx.AsyncClient(base_url=hub.url, timeout=30) as device:
        answer = await device.post("/api/v1/results",
                                   content=signed_result(hub.devices[name], outcome, reason))
    assert answer.status_code == 201, answer.text


async def test_pages_and_their_json_show_the_real_fleet(hub):
    first = hub.in_stage(0)
    await post_result(hub, first[0], "installed")
    await post_result(hub, first[1], "revert-failed", "health check failed after revert")
    await post_result(hub, "ops0", "not-ready", "2 GiB free, 3 GiB needed")
    async with browser(hub, "audrey") as client:
        overview = (await client.get("/console/overview")).text
        assert text_of(overview, "devices-total") == "15"
        assert text_of(overview, "group-lab-devices") == "12"
        assert text_of(overview, "group-ops-devices") == "3"
        assert text_of(overview, "site-south-devices") == "9"
        assert text_of(overview, "devices-online") == "15"  # all enrolled just now
        assert text_of(overview, "alerts-revert-failed-count") == "1"
        assert text_of(overview, "alerts-not-ready-count") == "1"
        assert text_of(overview, "alerts-stale-count") == "0"
        assert "2 GiB free, 3 GiB needed" in overview
        data = (await client.get("/console/api/overview")).json()
        assert data["groups"]["lab"]["sites"] == {"north": 6, "south": 6}
        assert [a["name"] for a in data["alerts"]["revert-failed"]] == [first[1]]

        listing = (await client.get("/console/rollouts")).text
        assert f'href="/console/rollouts/lab/{TARGET}"' in listing
        assert text_of(listing, "rollout-0-installed") == "1"
        rollout = (await client.get(ROLLOUT_PAGE)).text
        assert text_of(rollout, "rollout-state") == "active"
        # What the controller waits for, as `rollout status` says it (2 results, 1 good).
        assert text_of(rollout, "rollout-next") == "stage 1 of 2 (50%): 2 of 7 results needed"
        assert text_of(rollout, "stage-0-members") == str(len(first))
        assert text_of(rollout, "stage-0-installed") == "1"
        assert text_of(rollout, "stage-0-revert-failed") == "1"
        assert text_of(rollout, "stage-0-pending") == str(len(first) - 2)
        assert text_of(rollout, "stage-1-members") == str(len(hub.in_stage(1)))
        assert 'id="pause-button"' not in rollout and 'id="read-only"' in rollout  # auditor
        api = (await client.get(ROLLOUT_API)).json()
        assert api["stages"][0]["counts"]["installed"] == 1
        assert api["actions"] == {"pause": True, "resume": False, "advance": True,
                                  "abort": True}
        assert (await client.get("/console/api/rollouts")).json()[0]["release"] == TARGET

        device_id = hub.devices[first[1]].device_id
        device = (await client.get(f"/console/devices/{device_id}")).text
        assert text_of(device, "device-group") == "lab"
        assert "health check failed after revert" in device and "revert-failed" in device
        assert 'id="inventory-none"' in device  # this device sent no inventory
        assert ">device.enroll<" in device  # its history, from the audit log
        device_api = (await client.get(f"/console/api/devices/{device_id}")).json()
        assert device_api["results"][0]["bytes_from_peers"] == 1234
        assert device_api["rollouts"][0]["state"] == "revert-failed"
        assert device_api["rollouts"][0]["stage"] == 0
        assert [e["action"] for e in device_api["history"]] == ["device.enroll"]
        assert (await client.get("/console/devices/dev-00000000000000000000")).status_code == 404
        devices = (await client.get("/console/devices")).text
        assert text_of(devices, "devices-count") == "15"

        audit = (await client.get("/console/audit", params={"action": "rollout.*"})).text
        assert text_of(audit, "audit-count") == "1" and "rollout.start" in audit
        filtered = (await client.get("/console/api/audit", params={
            "subject": TARGET, "since": "2000-01-01", "until": "2999-01-01"})).json()
        # Newest first.
        assert [e["action"] for e in filtered["entries"]] == ["rollout.start", "release.publish"]
        assert filtered["entries"][0]["detail"]["group"] == "lab"
        bad = await client.get("/console/audit", params={"since": "yesterday"})
        assert bad.status_code == 400 and "not an ISO 8601" in bad.text

        compliance = await client.get("/console/compliance", params={"days": "7"})
        assert compliance.status_code == 200
        svg = re.search(r'<svg [^>]*id="compliance-chart-lab".*?</svg>', compliance.text, re.S)
        assert svg is not None
        ET.fromstring(svg.group(0))  # well-formed SVG, drawn on the server
        series = (await client.get("/console/api/compliance", params={"days": "7"})).json()
        assert set(series["groups"]) == {"lab", "ops"} and len(series["groups"]["lab"]) >= 30
        assert (await client.get("/console/compliance", params={"days": "0"})).status_code == 400
        assert (await client.get("/console/static/rollout_live.js")).status_code == 200


async def read_progress(lines, after: float | None = None) -> tuple[dict, float]:
    """The next `progress` event from an SSE line iterator, and when it arrived."""
    event = None
    async for line in lines:
        if line.startswith("event: "):
            event = line.removeprefix("event: ")
        elif line.startswith("data: ") and event == "progress":
            return json.loads(line.removeprefix("data: ")), time.monotonic()
    raise AssertionError("stream ended")


async def test_the_stream_delivers_a_changed_count_within_a_second_of_a_result(hub):
    first, later = hub.in_stage(0), hub.in_stage(1)
    delays = []
    async with browser(hub, "audrey") as client, client.stream("GET", EVENTS,
                                     headers={"accept": "text/event-stream"}) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.aiter_lines()
        with trio.fail_after(5):
            start, _ = await read_progress(lines)
        installed = start["stages"][0]["counts"]["installed"]
        # Posted at several offsets from the poll that sent the last event (right after
        # it is the worst case: a whole poll interval to wait).
        for name, offset in zip(first[2:6], (0.0, 0.07, 0.13, 0.19), strict=True):
            await trio.sleep(offset)
            sent = time.monotonic()
            await post_result(hub, name, "installed")
            ingested = time.monotonic()
            with trio.fail_after(5):
                progress, arrived = await read_progress(lines)
            installed += 1
            assert progress["stages"][0]["counts"]["installed"] == installed
            delays.append((arrived - sent, arrived - ingested))

        # A device in the release's swarm with bytes left is downloading (the tracker's
        # view: agents report only outcomes).
        with hub.db() as db:
            info_hash = bytes.fromhex(db.execute(
                "SELECT info_hash_v1 FROM releases WHERE target = ?", (TARGET,)).fetchone()[0])
        query = (f"info_hash={quote(info_hash)}&peer_id={quote(b'-LT2000-abcdefghijkl')}"
                 f"&port=6881&uploaded=0&downloaded=100&left=900"
                 f"&device={hub.devices[later[0]].device_id}")
        async with httpx.AsyncClient(base_url=hub.url) as agent:
            answer = await agent.get(f"/announce?{query}")
        assert b"failure" not in answer.content, answer.content
        with trio.fail_after(5):
            progress, _ = await read_progress(lines)
        assert progress["stages"][1]["counts"]["downloading"] == 1
    print("live-update delays (s, from POST sent / from ingest answered):",
          [(round(a, 3), round(b, 3)) for a, b in delays])
    assert all(from_sent < 1.0 for from_sent, _ in delays), delays


VIEWERS = 40


async def test_many_viewers_each_get_the_change_within_a_second(hub):
    """One watcher of the database for every viewer: 40 streams open, one result, every
    stream has the new count within a second."""
    name = hub.in_stage(0)[6]
    arrivals: list[float] = []
    ready = trio.Semaphore(0)
    posted = trio.Event()

    async def viewer(client: httpx.AsyncClient) -> None:
        async with client.stream("GET", EVENTS, headers={"accept": "text/event-stream"}) as s:
            lines = s.aiter_lines()
            start, _ = await read_progress(lines)
            ready.release()
            await posted.wait()
            progress, arrived = await read_progress(lines)
            assert progress["stages"][0]["counts"]["installed"] == (
                start["stages"][0]["counts"]["installed"] + 1)
            arrivals.append(arrived)

    limits = httpx.Limits(max_connections=VIEWERS + 5)
    async with browser(hub, "audrey") as logged_in:
        cookies = logged_in.cookies
    async with httpx.AsyncClient(base_url=hub.url, cookies=cookies, timeout=30,
                                 limits=limits) as client:
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                for _ in range(VIEWERS):
                    nursery.start_soon(viewer, client)
                for _ in range(VIEWERS):
                    await ready.acquire()
                sent = time.monotonic()
                posted.set()
                await post_result(hub, name, "installed")
    delays = sorted(arrived - sent for arrived in arrivals)
    print(f"{VIEWERS} viewers: change seen after {delays[0]:.3f}..{delays[-1]:.3f} s")
    assert len(delays) == VIEWERS and delays[-1] < 1.0, delays


async def test_the_rollouts_list_stream_carries_every_rollouts_changed_counts(hub):
    def installed(message: dict) -> int:
        [rollout] = message["rollouts"]
        return sum(stage["counts"]["installed"] for stage in rollout["stages"])

    async with browser(hub, "audrey") as client:
        listing = (await client.get("/console/rollouts")).text
        assert 'data-events-url="/console/api/events/rollouts"' in listing
        assert 'src="/console/static/rollouts_live.js"' in listing
        async with client.stream("GET", "/console/api/events/rollouts",
                                 headers={"accept": "text/event-stream"}) as stream:
            lines = stream.aiter_lines()
            with trio.fail_after(5):
                before, _ = await read_progress(lines)
            sent = time.monotonic()
            await post_result(hub, hub.in_stage(1)[1], "installed")
            with trio.fail_after(5):
                after, arrived = await read_progress(lines)
    assert installed(after) == installed(before) + 1 and arrived - sent < 1.0


async def test_admin_actions_change_the_rollout_and_are_audited_with_the_login(hub):
    async with browser(hub, "alice") as client:
        page = (await client.get(ROLLOUT_PAGE)).text
        assert 'id="pause-button"' in page and 'id="resume-button"' in page
        token = csrf_of(page)
        form = re.search(r'<form method="post" action="([^"]+)"[^>]*id="rollout-actions">\s*'
                         r'<input type="hidden" name="csrf_token" value="([^"]+)">', page)
        assert form and form.groups() == (ROLLOUT_PAGE, token)  # the form carries the token
        no_token = await client.post(ROLLOUT_PAGE, data={"action": "pause"})
        assert no_token.status_code == 403 and hub.rollout_state()[0] == "active"

        paused = await client.post(ROLLOUT_PAGE, data={
            "action": "pause", "reason": "change freeze", "csrf_token": token})
        assert paused.status_code == 303
        assert paused.headers["location"] == f"{ROLLOUT_PAGE}?done=pause"
        assert hub.rollout_state() == ("paused", 50)
        shown = (await client.get(paused.headers["location"])).text
        assert text_of(shown, "rollout-state") == "paused"
        assert re.search(r'id="pause-button"[^>]*disabled', shown)
        assert not re.search(r'id="resume-button"[^>]*disabled', shown)

        again = await client.post(ROLLOUT_PAGE, data={"action": "pause", "csrf_token": token})
        assert again.status_code == 409 and "not active; nothing to pause" in again.text

        headers = {"x-csrf-token": token}
        for action, state in (("resume", ("active", 50)), ("advance", ("active", 100)),
                              ("abort", ("halted", 100))):
            answer = await client.post(ROLLOUT_API, json={"action": action}, headers=headers)
            assert answer.status_code == 200, answer.text
            assert hub.rollout_state() == state
        assert answer.json()["aborted"] is True
        assert answer.json()["actions"] == dict.fromkeys(("pause", "resume", "advance",
                                                           "abort"), False)
        refused = await client.post(ROLLOUT_API, json={"action": "resume"}, headers=headers)
        assert refused.status_code == 409 and "aborted" in refused.json()["error"]
        unknown = await client.post(ROLLOUT_API, json={"action": "delete"}, headers=headers)
        assert unknown.status_code == 409 and "unknown action" in unknown.json()["error"]
    for action in ("pause", "resume", "advance", "abort"):
        entries = hub.audit(f"rollout.{action}")
        assert [(actor, subject) for actor, subject, _ in entries] == [("admin:alice", TARGET)]
    assert json.loads(hub.audit("rollout.pause")[0][2])["reason"] == "change freeze"


async def test_an_auditor_cannot_act(hub):
    before = hub.rollout_state()
    actions_before = len(hub.audit("rollout.resume"))
    async with browser(hub, "audrey") as client:
        token = csrf_of((await client.get(ROLLOUT_PAGE)).text)
        form = await client.post(ROLLOUT_PAGE, data={"action": "resume", "csrf_token": token})
        api = await client.post(ROLLOUT_API, json={"action": "resume"},
                                headers={"x-csrf-token": token})
    assert form.status_code == 403 and api.status_code == 403
    assert hub.rollout_state() == before
    assert len(hub.audit("rollout.resume")) == actions_before


async def test_a_stream_ends_once_its_session_is_logged_out(hub):
    async with browser(hub, "audrey") as client:
        token = csrf_of((await client.get(ROLLOUT_PAGE)).text)
        async with client.stream("GET", EVENTS, headers={"accept": "text/event-stream"}) as s:
            lines = s.aiter_lines()
            with trio.fail_after(5):
                await read_progress(lines)
            out = await client.post("/console/logout", data={"csrf_token": token})
            assert out.status_code == 303
            ended = time.monotonic()
            with trio.fail_after(15):  # the session is checked every 5 s
                async for line in lines:
                    assert not line.startswith("data: "), "nothing changed; no event due"
        print(f"stream ended {time.monotonic() - ended:.1f} s after logout")
        assert (await client.get(EVENTS)).status_code == 401
