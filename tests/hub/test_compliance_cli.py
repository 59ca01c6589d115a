"""`meisitong-hub exceptions …` and `report compliance` on a real hub: devices enrolled
through `enroll_device`, device-signed results through `ingest_result`, a signed policy
and rollout; every format honours the filters, exceptions are audited and validated by
field, and the PDF is rendered to PNG (poppler) and read back for its figures. The PNG is
kept under build/test-artifacts/."""

import csv
import io
import json
import shutil
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from agent.wire.result import ResultRecord, SignedResult
from hub.cli.main import main
from hub.cli.report import compliance_report
from hub.compliance.report import percent
from hub.database import HubDatabase
from hub.devices.results_store import ingest_result
from hub.hub_dir import HubDir
from tests.fleet import tar_bytes
from tests.hub.test_rollout_cli import enroll

ARTIFACTS = Path(__file__).resolve().parents[2] / "build" / "test-artifacts"
RELEASES = {
    "ssl": ('name = "ssl"\nversion = "3.0.1"\nseverity = "critical"\ncategory = "security"\n'
            '[install]\ntype = "file-tree"\nroot = "/opt/ssl"\n'),
    "font": ('name = "font"\nversion = "1.1"\nseverity = "low"\ncategory = "application"\n'
             '[install]\ntype = "file-tree"\nroot = "/opt/font"\n'),
}


def run(hub, *args):
    return CliRunner().invoke(main, [*args, "--dir", str(hub.root)])


def ok(hub, *args):
    result = run(hub, *args)
    assert result.exit_code == 0, result.output
    return result.output


def published_at(hub, name):
    database = HubDatabase(hub.database)
    try:
        text = database.query("SELECT published_at FROM releases WHERE name = ?", (name,))[0][0]
    finally:
        database.close()
    return datetime.fromisoformat(text)


def report_result(hub, identity, name, version, outcome, finished, reason=""):
    target = f"releases/{name}/{version}/{name}.tar"
    record = ResultRecord(
        record_id=str(uuid.uuid4()), device_id=identity.device_id, release=target,
        name=name, version=version, outcome=outcome, reason=reason,
        started_at=(finished - timedelta(minutes=5)).isoformat(),
        finished_at=finished.isoformat())
    database = HubDatabase(hub.database)
    try:
        ingest_result(database, SignedResult.sign(record, identity.private_key))
    finally:
        database.close()


@pytest.fixture
def fleet(tmp_path):
    return make_fleet(tmp_path)


def make_fleet(tmp_path):
    """Group web (critical deadline 72 h): web-1 installed after 1 h, web-2 reverted,
    web-3 silent, web-4 to be excepted; group db (no policy): db-1 installed the font."""
    directory = tmp_path / "hub"
    assert CliRunner().invoke(main, ["init", "--dir", str(directory), "--json"]).exit_code == 0
    hub = HubDir(directory)
    for name, text in RELEASES.items():
        (tmp_path / f"{name}.toml").write_text(text)
        (tmp_path / f"{name}.tar").write_bytes(tar_bytes({f"bin/{name}": b"x"}))
        ok(hub, "publish", str(tmp_path / f"{name}.toml"), str(tmp_path / f"{name}.tar"))
    (tmp_path / "web.toml").write_text("deadline_hours = { critical = 72, low = 720 }\n")
    devices = {name: enroll(hub, name, "web") for name in ("web-1", "web-2", "web-3", "web-4")}
    devices["db-1"] = enroll(hub, "db-1", "db")
    ok(hub, "policy", "set", "web", str(tmp_path / "web.toml"))
    for release, group in (("ssl", "web"), ("font", "db")):
        ok(hub, "rollout", "start", release, "--group", group, "--stages", "100")
    ssl = published_at(hub, "ssl")
    report_result(hub, devices["web-1"], "ssl", "3.0.1", "installed", ssl + timedelta(hours=1))
    report_result(hub, devices["web-2"], "ssl", "3.0.1", "reverted", ssl + timedelta(hours=2),
                  reason="health check 'ssl-probe' failed")
    report_result(hub, devices["db-1"], "font", "1.1", "installed",
                  published_at(hub, "font") + timedelta(hours=3))
    return hub, devices


def test_exceptions_add_list_remove_are_audited_and_counted_by_the_report(fleet):
    hub, devices = fleet
    expires = (datetime.now(UTC) + timedelta(days=10)).date().isoformat()
    ok(hub, "exceptions", "add", "web-4", "ssl@3.0.1", "--reason", "kiosk, frozen until the "
       "trade fair", "--expires", expires)
    [listed] = json.loads(ok(hub, "exceptions", "list", "--json"))
    assert listed["device"] == "web-4" and listed["release"] == "releases/ssl/3.0.1/ssl.tar"
    assert listed["expires_at"] == f"{expires}T00:00:00+00:00" and not listed["expired"]
    report = compliance_report(str(hub.root), None, None, None)
    rows = {(r["device"], r["name"]): r for r in report["rows"]}
    assert rows[("web-4", "ssl")]["status"] == "excepted"
    assert "kiosk, frozen until the trade fair" in rows[("web-4", "ssl")]["reason"]
    ok(hub, "exceptions", "remove", "web-4", "ssl")
    assert json.loads(ok(hub, "exceptions", "list", "--json")) == []
    audit = json.loads(ok(hub, "audit", "--action", "exception.*", "--json"))
    assert [entry["action"] for entry in audit] == ["exception.add", "exception.remove"]
    assert audit[0]["subject"] == devices["web-4"].device_id
    assert audit[0]["detail"] == {"release": "releases/ssl/3.0.1/ssl.tar",
                                  "reason": "kiosk, frozen until the trade fair",
                                  "expires_at": f"{expires}T00:00:00+00:00"}


@pytest.mark.parametrize(("args", "message"), [
    (["--reason", " ", "--expires", "2099-01-01"], "--reason: must say why"),
    (["--reason", "x", "--expires", "next week"], "--expires 'next week': not an ISO 8601"),
    (["--reason", "x", "--expires", "2001-01-01"], "--expires '2001-01-01': 2001-01-01T00:00:00"
     "+00:00 is not in the future"),
])
def test_a_bad_exception_is_refused_naming_the_field_and_nothing_is_written(fleet, args,
                                                                           message):
    hub, _ = fleet
    result = run(hub, "exceptions", "add", "web-4", "ssl", *args)
    assert result.exit_code == 1 and message in result.output, result.output
    assert "Traceback" not in result.output
    assert json.loads(ok(hub, "exceptions", "list", "--json")) == []
    result = run(hub, "exceptions", "add", "nobody", "ssl", "--reason", "x", "--expires",
                 "2099-01-01")
    assert result.exit_code == 1 and "DEVICE 'nobody'" in result.output
    result = run(hub, "exceptions", "add", "web-4", "nothing", "--reason", "x", "--expires",
                 "2099-01-01")
    assert result.exit_code == 1 and "RELEASE: no published release 'nothing'" in result.output


def test_json_and_csv_have_one_row_per_device_and_release_and_honour_the_filters(fleet):
    hub, _ = fleet
    everything = json.loads(ok(hub, "report", "compliance", "--format", "json"))
    assert len(everything["rows"]) == 5  # 4 web devices x ssl, 1 db device x font
    statuses = {(r["device"], r["name"]): r["status"] for r in everything["rows"]}
    assert statuses == {("web-1", "ssl"): "compliant", ("web-2", "ssl"): "reverted",
                        ("web-3", "ssl"): "pending", ("web-4", "ssl"): "pending",
                        ("db-1", "font"): "compliant"}
    web = json.loads(ok(hub, "report", "compliance", "--group", "web", "--format", "json"))
    assert {r["group"] for r in web["rows"]} == {"web"} and len(web["rows"]) == 4
    assert web["filters"] == {"group": "web", "severity": None, "since": None}
    [summary] = web["summary"]
    assert (summary["in_scope"], summary["compliant"], summary["share"]) == (4, 1, 0.25)
    assert summary["mean_hours"] == 1.0
    text = ok(hub, "report", "compliance", "--severity", "low", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [(r["device"], r["name"], r["status"]) for r in rows] == [("db-1", "font",
                                                                      "compliant")]
    future = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    empty = list(csv.DictReader(io.StringIO(ok(hub, "report", "compliance", "--since",
                                               future, "--format", "csv"))))
    assert empty == []
    result = run(hub, "report", "compliance", "--severity", "urgent")
    assert result.exit_code == 1 and "--severity 'urgent'" in result.output
    table = ok(hub, "report", "compliance")
    assert "25.0 %" in table and "reverted" in table


def test_html_is_an_escaped_evidence_document_with_the_filters_and_exceptions(fleet, tmp_path):
    hub, _ = fleet
    out = tmp_path / "report.html"
    ok(hub, "report", "compliance", "--group", "web", "--format", "html", "--output", str(out))
    html = out.read_text()
    assert "Patch compliance report" in html and "group: web;" in html
    assert "25.0 %" in html and "Exceptions (1)" in html
    assert "health check &#39;ssl-probe&#39; failed" in html  # escaped, as written
    assert "db-1" not in html


@pytest.mark.skipif(shutil.which("pdftoppm") is None or shutil.which("pdftotext") is None,
                    reason="poppler-utils (pdftoppm, pdftotext) not installed")
def test_pdf_renders_to_a_non_blank_page_whose_text_has_the_computed_figures(fleet, tmp_path):
    hub, _ = fleet
    now = datetime.now(UTC) + timedelta(hours=100)  # past the 72 h deadline: web-3 offline
    data = compliance_report(str(hub.root), None, None, None, now=now)
    from hub.cli.report import render

    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(render(data, "pdf"))
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], check=True,
                          capture_output=True, text=True).stdout
    shares = {percent(s["share"]) for s in data["summary"]}
    assert shares == {"25.0 %", "100.0 %"}
    for figure in shares:
        assert figure in text
    assert "Patch compliance report" in text and data["hub"] in text
    assert "offline since" in text and "reverted" in text
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    prefix = ARTIFACTS / "compliance-report"
    subprocess.run(["pdftoppm", "-png", "-r", "60", "-f", "1", "-l", "1", "-singlefile",
                    str(pdf), str(prefix)], check=True)
    png = prefix.with_suffix(".png")
    from PIL import Image

    with Image.open(png) as image:
        grey = image.convert("L")
        dark = sum(grey.histogram()[:128])
        assert image.width > 400 and dark > 0.005 * image.width * image.height
    # The command writes the same document.
    ok(hub, "report", "compliance", "--format", "pdf", "--output", str(tmp_path / "cli.pdf"))
    assert (tmp_path / "cli.pdf").read_bytes().startswith(b"%PDF")


def test_compliance_over_time_reads_the_hubs_database(fleet):
    from hub.compliance.over_time import compliance_over_time

    hub, _ = fleet
    ssl = published_at(hub, "ssl")
    database = HubDatabase(hub.database)
    try:
        points = compliance_over_time(database, "web", ssl, timedelta(hours=1),
                                      now=ssl + timedelta(hours=3))
    finally:
        database.close()
    assert [share for _, share in points] == [0.0, 0.25, 0.25, 0.25]
