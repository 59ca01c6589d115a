"""`meisitong-hub vulns import / explain / report` against a hub made by `init`, with
devices enrolled and their inventories taken in by the inventory store
(tests/hub/vulns_fleet.py), and the feed files of tests/hub/vuln_feeds/."""

from __future__ import annotations

import csv
import io
import json
import shlex
import shutil
import subprocess
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


def build_deb(directory, package, version, source=""):
    tree = directory / f"{package}-{version}"
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "usr/share/doc" / package).mkdir(parents=True)
    (tree / "usr/share/doc" / package / "VERSION").write_text(version)
    source_line = f"Source: {source}\n" if source else ""
    (tree / "DEBIAN/control").write_text(
        f"Package: {package}\n{source_line}Version: {version}\nArchitecture: amd64\n"
        "Maintainer: Tests <tests@example.invalid>\nDescription: test package\n")
    deb = directory / f"{package}_{version}_amd64.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-b", str(tree), str(deb)],
                   check=True, capture_output=True)
    return deb


def publish_deb(hub, tmp_path, name, version, package, deb_version, source=""):
    deb = build_deb(tmp_path, package, deb_version, source)
    release = tmp_path / f"{name}-{version}.toml"
    release.write_text(f'name = "{name}"\nversion = "{version}"\nseverity = "critical"\n'
                       f'category = "security"\n[install]\ntype = "dpkg"\n'
                       f'package = "{package}"\n')
    ok(hub, "publish", str(release), str(deb))


@pytest.fixture
def reported_hub(fleet_hub, tmp_path):
    ok(fleet_hub, "vulns", "import", str(FEEDS))
    # carries the fix (source version from `Source: openssl (…)`), and an older one that
    # does not: only the first may be suggested
    publish_deb(fleet_hub, tmp_path, "libssl3-security", "3.0.15", "libssl3",
                "3.0.15-1~deb12u1", "openssl")
    publish_deb(fleet_hub, tmp_path, "libssl3-old", "3.0.13", "libssl3",
                "3.0.13-1~deb12u1", "openssl")
    return fleet_hub


def test_report_gives_exposure_per_cve_and_group_with_a_ready_rollout_command(reported_hub):
    rows = json.loads(ok(reported_hub, "vulns", "report", "--format", "json"))
    by_key = {(row["vulnerability"], row["group"]): row for row in rows}
    assert set(by_key) == {
        ("CVE-2024-5535", "web"), ("CVE-2024-5535", "legacy"), ("CVE-2024-6387", "web"),
        ("CVE-2023-45853", "web"), ("CVE-2025-0725", "web"), ("CVE-2024-99001", "web"),
        ("CVE-2023-7090", "legacy"), ("CVE-2024-25062", "legacy"),
    }
    openssl = by_key[("CVE-2024-5535", "web")]
    assert openssl["severity"] == "critical" and openssl["score"] == 9.1
    assert openssl["severity_source"].startswith("CVSS_V3 CVSS:3.1/AV:N")
    assert openssl["state"] == "fixable" and openssl["devices"] == ["web-1", "web-2"]
    assert openssl["installed"] == ["libssl3 3.0.11-1~deb12u2"]
    assert openssl["fixed_in"] == ["bookworm: openssl 3.0.15-1~deb12u1"]
    assert openssl["suggested_releases"] == ["libssl3-security@3.0.15"]
    command = openssl["rollout_commands"][0]
    assert command == (f"meisitong-hub rollout start libssl3-security@3.0.15 --group web "
                       f"--dir {reported_hub}")
    legacy = by_key[("CVE-2024-5535", "legacy")]
    assert legacy["fixed_in"] == ["bullseye: openssl 1.1.1w-0+deb11u2"]
    assert legacy["rollout_commands"] == []
    assert "no published release carries libssl1.1 from source openssl 1.1.1w-0+deb11u2" \
        in legacy["suggestion"]
    zlib = by_key[("CVE-2023-45853", "web")]
    assert zlib["state"] == "unfixed" and zlib["fixed_in"] == [] and \
        zlib["rollout_commands"] == [] and zlib["severity"] == "unimportant"
    assert by_key[("CVE-2025-0725", "web")]["state"] == "undetermined"
    assert rows[0]["vulnerability"] == "CVE-2024-5535"  # most severe first
    # the command is ready: it starts the rollout as printed
    result = CliRunner().invoke(main, shlex.split(command)[1:])
    assert result.exit_code == 0, result.output
    assert "rollout of releases/libssl3-security/3.0.15/" in result.output


def test_report_filters_by_group_and_severity_and_writes_csv_and_a_table(reported_hub):
    legacy = json.loads(ok(reported_hub, "vulns", "report", "--group", "legacy",
                           "--format", "json"))
    assert {row["group"] for row in legacy} == {"legacy"} and len(legacy) == 3
    critical = json.loads(ok(reported_hub, "vulns", "report", "--severity", "critical",
                             "--format", "json"))
    assert {(row["vulnerability"], row["group"]) for row in critical} == {  # CVSS is the CVE's
        ("CVE-2024-5535", "web"), ("CVE-2024-5535", "legacy")}
    high = json.loads(ok(reported_hub, "vulns", "report", "--severity", "high",
                         "--format", "json"))
    assert len(high) == 2  # nothing else is scored high or above
    rows = list(csv.DictReader(io.StringIO(ok(reported_hub, "vulns", "report", "--format",
                                              "csv"))))
    assert len(rows) == 8 and rows[0]["vulnerability"] == "CVE-2024-5535"
    assert rows[0]["devices"] in ("web-1; web-2", "legacy-1")
    table = ok(reported_hub, "vulns", "report")
    assert "CVE-2024-5535" in table and "meisitong-hub rollout start libssl3-security@3.0.15"\
        in table
