"""`meisitong-hub vulns import / explain / report` against a hub made by `init`, with
devices enrolled and their inventories taken in by the inventory store
(tests/hub/vulns_fleet.py), and the feed files of tests/hub/vuln_feeds/."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from hub.cli.main import main
from hub.database import HubDatabase
from tests.hub.vulns_fleet import (
    BOOKWORM,
    BOOKWORM_PACKAGES,
    BULLSEYE,
    BULLSEYE_PACKAGES,
    add_device,
)

FEEDS = Path(__file__).parent / "vuln_feeds"


def run(hub, *args):
    return CliRunner().invoke(main, [*args[:2], "--dir", str(hub), *args[2:]])


def ok(hub, *args):
    result = run(hub, *args)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def fleet_hub(initialized_hub_dir):
    database = HubDatabase(initialized_hub_dir / "hub.db")
    try:
        add_device(database, "web-1", "web", BOOKWORM, BOOKWORM_PACKAGES)
        add_device(database, "web-2", "web", BOOKWORM, BOOKWORM_PACKAGES)
        add_device(database, "legacy-1", "legacy", BULLSEYE, BULLSEYE_PACKAGES)
    finally:
        database.close()
    return initialized_hub_dir


def test_import_reads_a_directory_of_osv_files_lists_and_the_tracker_and_is_idempotent(
        fleet_hub):
    first = json.loads(ok(fleet_hub, "vulns", "import", str(FEEDS), "--json"))
    assert first == {"files": 6, "records": 14, "added": 14, "replaced": 0, "unchanged": 0,
                     "kept_newer": 0}
    again = json.loads(ok(fleet_hub, "vulns", "import", str(FEEDS), "--json"))
    assert again["unchanged"] == 14 and again["added"] == again["replaced"] == 0
    database = HubDatabase(fleet_hub / "hub.db")
    try:
        assert database.query("SELECT COUNT(*) FROM vuln_advisories")[0][0] == 14
        audit = database.query("SELECT detail FROM audit WHERE action = 'vulns.import'")
        assert len(audit) == 2 and json.loads(audit[0]["detail"])["added"] == 14
    finally:
        database.close()


def _record(tmp_path, name, modified, fixed):
    record = json.loads((FEEDS / "osv" / "DEBIAN-CVE-2023-4911.json").read_text())
    record["modified"] = modified
    record["affected"][0]["ranges"][0]["events"][1]["fixed"] = fixed
    path = tmp_path / name
    path.write_text(json.dumps(record))
    return path


def test_a_newer_osv_version_replaces_the_older_and_an_older_one_never_replaces_it(
        fleet_hub, tmp_path):
    old = _record(tmp_path, "old.json", "2024-01-01T00:00:00Z", "2.36-9+deb12u3")
    new = _record(tmp_path, "new.json", "2024-06-01T00:00:00Z", "2.36-9+deb12u5")
    ok(fleet_hub, "vulns", "import", str(old))
    replaced = json.loads(ok(fleet_hub, "vulns", "import", str(new), "--json"))
    assert replaced["replaced"] == 1
    kept = json.loads(ok(fleet_hub, "vulns", "import", str(old), "--json"))
    assert kept["kept_newer"] == 1
    explained = json.loads(ok(fleet_hub, "vulns", "explain", "CVE-2023-4911", "web-1",
                              "--json"))
    # 2.36-9+deb12u4 is affected by the newer record (fixed in +deb12u5)
    assert explained["verdict"] == "fixable"
    assert explained["records"][0]["modified"] == "2024-06-01T00:00:00Z"


def test_a_bad_record_names_file_and_record_and_nothing_of_the_import_is_stored(
        fleet_hub, tmp_path):
    feeds = tmp_path / "feeds"
    shutil.copytree(FEEDS, feeds)
    bad = json.loads((feeds / "osv" / "debian-12-batch.json").read_text())
    bad[1]["affected"][0]["ranges"][0]["type"] = "DEBIAN"
    (feeds / "osv" / "debian-12-batch.json").write_text(json.dumps(bad))
    result = run(fleet_hub, "vulns", "import", str(feeds))
    assert result.exit_code == 1
    assert "debian-12-batch.json: [1]: record DEBIAN-CVE-2024-99001" in result.output
    assert "affected[0].ranges[0].type" in result.output and "Traceback" not in result.output
    database = HubDatabase(fleet_hub / "hub.db")
    try:
        assert database.query("SELECT COUNT(*) FROM vuln_advisories")[0][0] == 0
    finally:
        database.close()


def test_a_bad_tracker_entry_and_a_bad_debian_version_are_named(fleet_hub, tmp_path):
    tracker = json.loads((FEEDS / "debian-tracker.json").read_text())
    tracker["curl"]["CVE-2024-2398"]["releases"]["bookworm"]["status"] = "fixed"
    path = tmp_path / "tracker.json"
    path.write_text(json.dumps(tracker))
    result = run(fleet_hub, "vulns", "import", str(path))
    assert result.exit_code == 1
    assert "record CVE-2024-2398 of source package curl: releases.bookworm: status 'fixed'" \
        in result.output
    record = json.loads((FEEDS / "osv" / "DEBIAN-CVE-2023-4911.json").read_text())
    record["affected"][0]["ranges"][0]["events"][1]["fixed"] = "2.36 9"
    path.write_text(json.dumps(record))
    result = run(fleet_hub, "vulns", "import", str(path))
    assert result.exit_code == 1 and "record DEBIAN-CVE-2023-4911: affected[0].ranges[0]: " \
        "fixed '2.36 9' is not a Debian version" in result.output
    path.write_text("{not json")
    assert "not JSON" in run(fleet_hub, "vulns", "import", str(path)).output


def test_explain_gives_record_range_installed_version_and_why(fleet_hub):
    ok(fleet_hub, "vulns", "import", str(FEEDS))
    text = ok(fleet_hub, "vulns", "explain", "CVE-2024-5535", "web-1")
    assert "CVE-2024-5535 on web-1" in text and ": fixable" in text
    assert "record debian-tracker:openssl/CVE-2024-5535" in text
    assert "binary libssl3 3.0.11-1~deb12u2 (amd64) is built from openssl 3.0.11-1~deb12u2"\
        in text
    assert "about bullseye; the device runs bookworm" in text
    answer = json.loads(ok(fleet_hub, "vulns", "explain", "CVE-2023-4911", "web-1", "--json"))
    assert answer["verdict"] == "not-affected"
    verdicts = {s["about"]: s for r in answer["records"] for s in r["statements"]}
    assert verdicts["Debian:12 source package glibc"]["verdict"] == "not-affected"
    assert verdicts["Debian:12 source package glibc"]["range"] == "introduced 0, fixed " \
        "2.36-9+deb12u3"
    assert verdicts["Debian:13 source package glibc"]["verdict"] == "not-applicable"
    pillow = json.loads(ok(fleet_hub, "vulns", "explain", "CVE-2023-4863", "web-1", "--json"))
    assert pillow["verdict"] == "not-affected"
    assert "not a Debian one" in pillow["records"][0]["statements"][0]["why"]
    fixed0 = ok(fleet_hub, "vulns", "explain", "CVE-2023-7090", "web-1")
    assert "fixed_version 0, this release never had the flaw" in fixed0


def test_explain_of_unknown_cve_or_device_is_a_clear_error(fleet_hub):
    ok(fleet_hub, "vulns", "import", str(FEEDS))
    result = run(fleet_hub, "vulns", "explain", "CVE-1999-0001", "web-1")
    assert result.exit_code == 1 and "no imported record is about 'CVE-1999-0001'" in \
        result.output
    result = run(fleet_hub, "vulns", "explain", "CVE-2024-5535", "nobody")
    assert result.exit_code == 1 and "no single enrolled device" in result.output
