"""The agent's inventory reporter against a real hub API (Hypercorn, HTTP, SQLite) and
a real probe child process: a full record on start, nothing while nothing changed, a
compact diff after a package change, a full one when the hub lacks the base (409), the
minimum spacing, and the probe's own reading of dpkg-query and os-release."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.config import InventorySection
from agent.device_identity import DeviceIdentity
from agent.inventory.probe import dpkg_packages, os_release, product_name
from agent.inventory.reporter import InventoryReporter
from agent.journal import Journal
from hub.database import HubDatabase
from hub.inventory import store
from tests.hub.conftest import api_hub  # noqa: F401 - the fixture
from tests.hub.test_device_api import enroll_request
from tests.inventory_dpkg import fake_dpkg_query, write_packages
from tests.inventory_packages import package_list, upgraded


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


async def reporter_for(client, token, tmp_path: Path, rows, **settings):
    identity = DeviceIdentity(Ed25519PrivateKey.generate())
    response = await client.post("/api/v1/enroll",
                                 json=enroll_request(identity, token.secret).model_dump())
    assert response.status_code == 200
    packages = tmp_path / "status"
    write_packages(packages, rows)
    section = InventorySection(dpkg_query=str(fake_dpkg_query(tmp_path, packages)),
                               dpkg_status=packages, **settings)
    published: list[tuple[str, str]] = []
    clock = Clock()
    reporter = InventoryReporter(section, tmp_path / "inventory.json", identity,
                                 Journal(tmp_path / "journal.db"), str(client.base_url), 10,
                                 tmp_path, publish=lambda k, b: published.append((k, b)),
                                 clock=clock)
    return reporter, identity, packages, clock, published


def stored_kind(hub_dir, device_id) -> str:
    database = HubDatabase(hub_dir.database)
    try:
        row = database.query("SELECT record FROM inventory_latest WHERE device_id = ?",
                             (device_id,))[0]
        return json.loads(row["record"])["record"]["kind"]
    finally:
        database.close()


def latest(hub_dir, device_id):
    database = HubDatabase(hub_dir.database)
    try:
        return store.latest(database, device_id)
    finally:
        database.close()


async def test_full_on_start_nothing_unchanged_then_a_diff_after_a_package_change(
        api_hub, tmp_path):  # noqa: F811
    client, token, hub_dir = api_hub
    rows = package_list(3000)
    reporter, identity, packages, clock, published = await reporter_for(
        client, token, tmp_path, rows, min_spacing=200)
    assert await reporter.step() == "built full; taken"
    assert latest(hub_dir, identity.device_id).package_count == 3000  # the "rc" ones left out
    clock.now += 10
    assert await reporter.step() == "nothing due"  # the status file did not move
    write_packages(packages, upgraded(rows, 5))
    clock.now += 10
    assert await reporter.step() == "spacing"  # 20 s after the last record: not yet
    clock.now += 200
    assert await reporter.step() == "built diff; taken"
    assert stored_kind(hub_dir, identity.device_id) == "diff"
    assert sorted((p.name, p.version, p.architecture, p.source, p.source_version)
                  for p in latest(hub_dir, identity.device_id).software.packages) == sorted(
        upgraded(rows, 5))
    assert [key for key, _body in published] == ["software-full", "software-diff"]
    full, diff = (len(body) for _key, body in published)
    assert diff < full / 20, (full, diff)
    clock.now += 500
    write_packages(packages, upgraded(rows, 5))  # touched, same content
    assert await reporter.step() == "unchanged"
    clock.now += 6 * 3600  # the interval: a record even though nothing changed
    assert await reporter.step() == "built diff; taken"


async def test_a_hub_lacking_the_base_answers_409_and_gets_a_full_record_next(
        api_hub, tmp_path):  # noqa: F811
    client, token, hub_dir = api_hub
    rows = package_list(500)
    reporter, identity, packages, clock, _published = await reporter_for(
        client, token, tmp_path, rows, min_spacing=300)
    assert await reporter.step() == "built full; taken"
    database = HubDatabase(hub_dir.database)  # the hub restored from an older backup
    with database.transaction() as db:
        db.execute("DELETE FROM inventory_bases")
        db.execute("DELETE FROM inventory_latest")
    database.close()
    write_packages(packages, upgraded(rows, 3))
    clock.now += 400
    assert await reporter.step() == "built diff; hub asks for a full record (HTTP 409)"
    clock.now += 1  # the hub asked: no spacing
    assert await reporter.step() == "built full; taken"
    assert latest(hub_dir, identity.device_id).package_count == len(upgraded(rows, 3))


async def test_an_unreachable_hub_keeps_the_record_pending_and_it_goes_later(
        api_hub, tmp_path):  # noqa: F811
    client, token, hub_dir = api_hub
    reporter, identity, _packages, clock, _published = await reporter_for(
        client, token, tmp_path, package_list(50))
    reporter.hub_url = "http://127.0.0.1:9"
    assert await reporter.step() == "built full; hub unreachable"
    reporter.hub_url = str(client.base_url).rstrip("/")
    assert await reporter.step() == "pending"  # retried after RETRY_SECONDS, not at once
    clock.now += 61
    assert await reporter.step() == "taken"
    assert latest(hub_dir, identity.device_id) is not None


def test_the_probe_reads_dpkg_query_leaving_out_config_only_packages(tmp_path):
    packages = tmp_path / "status"
    write_packages(packages, [("libssl3", "3.0.11-1~deb12u2", "amd64", "openssl",
                               "3.0.11-1~deb12u2")])
    assert dpkg_packages(str(fake_dpkg_query(tmp_path, packages))) == [
        ["libssl3", "3.0.11-1~deb12u2", "amd64", "openssl", "3.0.11-1~deb12u2"]]
    assert dpkg_packages(str(tmp_path / "no-dpkg-here")) == []  # no dpkg: no packages


def test_the_probe_reads_os_release_and_fails_loudly_when_dpkg_query_fails(tmp_path):
    release = tmp_path / "os-release"
    release.write_text('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\n'
                       'VERSION_ID="12"\nVERSION_CODENAME=bookworm\n# comment\n')
    assert os_release(release) == {"id": "debian", "version_id": "12", "codename": "bookworm",
                                   "pretty_name": "Debian GNU/Linux 12 (bookworm)"}
    done = subprocess.run([sys.executable, "-m", "agent.inventory.probe", "--dpkg-query",
                           "false"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "failed" in done.stderr


async def test_the_agents_status_says_what_became_of_its_last_record(api_hub, tmp_path):  # noqa: F811
    client, token, _hub_dir = api_hub
    reporter, _identity, _packages, _clock, _published = await reporter_for(
        client, token, tmp_path, package_list(40))
    await reporter.step()
    text, _at = reporter.journal.status()["inventory"]
    assert text.startswith("record ") and "(full, 40 packages): taken at " in text


def test_the_probe_reads_the_hardware_model_from_dmi_else_the_device_tree(tmp_path):
    dmi, tree = tmp_path / "product_name", tmp_path / "model"
    tree.write_bytes(b"Raspberry Pi 4 Model B Rev 1.4\x00")
    assert product_name(dmi, tree) == "Raspberry Pi 4 Model B Rev 1.4"  # no DMI: an ARM board
    dmi.write_text("OptiPlex 7090\n")
    assert product_name(dmi, tree) == "OptiPlex 7090"
    assert product_name(tmp_path / "none", tmp_path / "neither") == ""
