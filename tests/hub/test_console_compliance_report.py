"""The compliance report and its exceptions in the console, against a real `meisitong-hub
serve` process over HTTP (issue 13 item 3, "the same in the console"): the filters are
GET parameters and refused by field; the summary, exceptions and rows are the report's;
each download is the very file `meisitong-hub report compliance` writes for the same
filters; an admin adds and removes exceptions with the CSRF-carrying forms, audited as
`admin:NAME` with the detail the CLI records, and the report follows; an auditor sees
the list with no forms and a forged POST is refused."""

from __future__ import annotations

import csv
import io
import json
import re
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from agent.wire.result import Outcome
from hub.compliance.hub_report import render_export
from hub.hub_dir import HubDir
from tests.compat_fleet import enroll, publish_tool, report
from tests.fleet import tar_bytes
from tests.processes import BIN_HUB, Fleet, free_port

pytestmark = pytest.mark.slow

PASSWORD = "correct horse battery"
SSL = ('name = "ssl"\nversion = "3.0.1"\nseverity = "critical"\ncategory = "security"\n'
       '[install]\ntype = "file-tree"\nroot = "/opt/ssl"\n')
TOOL = "releases/tool/2.0.0/tool.tar"
REPORT = "/console/compliance/report"
EXCEPTIONS = "/console/compliance/exceptions"


class Served:
    def __init__(self, fleet: Fleet, devices: dict[str, str]) -> None:
        self.fleet = fleet
        self.url = fleet.hub_url
        self.devices = devices  # name -> device id

    def cli(self, *args: str) -> bytes:
        done = subprocess.run([BIN_HUB, *args, "--dir", str(self.fleet.hub_dir)],
                              capture_output=True, timeout=120)
        assert done.returncode == 0, done.stderr.decode()[-2000:]
        return done.stdout

    def cli_report(self, output_format: str, *filters: str) -> bytes:
        if output_format != "pdf":
            return self.cli("report", "compliance", *filters, "--format", output_format)
        out = self.fleet.workdir / "cli.pdf"
        self.cli("report", "compliance", *filters, "--format", "pdf", "--output", str(out))
        return out.read_bytes()

    def audit(self, action: str) -> list[tuple[str, str, dict]]:
        with sqlite3.connect(self.fleet.hub_dir / "hub.db") as db:
            rows = db.execute("SELECT actor, subject, detail FROM audit WHERE action = ? "
                              "ORDER BY id", (action,)).fetchall()
        return [(actor, subject, json.loads(detail)) for actor, subject, detail in rows]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("console-compliance")
    fleet = Fleet(workdir, workdir / "hub", f"http://127.0.0.1:{free_port('127.0.0.1')}")
    try:
        fleet.serve_new_hub()
        for name, role in (("alice", "admin"), ("audrey", "auditor")):
            subprocess.run([BIN_HUB, "admins", "add", name, "--role", role,
                            "--password-stdin", "--dir", str(fleet.hub_dir)],
                           input=PASSWORD + "\n", text=True, check=True,
                           capture_output=True, timeout=60)
        hub = publish_tool(HubDir(fleet.hub_dir), workdir)
        (workdir / "SSL.toml").write_text(SSL)
        (workdir / "ssl.tar").write_bytes(tar_bytes({"lib/ssl": b"y"}))
        fleet.command(BIN_HUB, "publish", str(workdir / "SSL.toml"), str(workdir / "ssl.tar"))
        devices = {}
        for name, group in (("desk-0", "office"), ("desk-1", "office"), ("desk-2", "office"),
                            ("rig-0", "lab"), ("rig-1", "lab")):
            devices[name] = enroll(hub, name, group)
        for group in ("office", "lab"):
            fleet.command(BIN_HUB, "rollout", "start", "tool", "--group", group)
        fleet.command(BIN_HUB, "rollout", "start", "ssl", "--group", "office")
        report(hub, devices["desk-0"], Outcome.INSTALLED)
        report(hub, devices["desk-1"], Outcome.FAILED)
        report(hub, devices["rig-0"], Outcome.INSTALLED)
        yield Served(fleet, {name: device.device_id for name, device in devices.items()})
    except BaseException:
        for log in sorted(workdir.glob("*.log")):
            print(f"--- {log.name}\n" + log.read_text(errors="replace")[-3000:])
        raise
    finally:
        fleet.stop_all()


@contextmanager
def browser(served: Served, name: str) -> Iterator[httpx.Client]:
    """A logged-in client that sends the hub's Origin, as a browser does."""
    with httpx.Client(base_url=served.url, headers={"origin": served.url},
                      timeout=60) as client:
        answer = client.post("/console/login", data={"name": name, "password": PASSWORD,
                                                     "next": REPORT})
        assert answer.status_code == 303, answer.text[:300]
        yield client


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf-token" content="([^"]+)"', page)
    assert found
    return found.group(1)


def text_of(page: str, element_id: str) -> str:
    found = re.search(rf'id="{re.escape(element_id)}"[^>]*>([^<]*)<', page)
    assert found, f"no element {element_id!r}"
    return found.group(1).strip()


def rows_of(csv_bytes: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(csv_bytes.decode())))


def same_but_time(console: bytes, cli: bytes) -> bool:
    """Equal but for the instant each was generated at (the CLI runs a moment later)."""
    stamp = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00")
    generated = json.loads(console)["generated_at"].encode() if console[:1] == b"{" else None
    if generated is None:
        return stamp.sub(b"T", console) == stamp.sub(b"T", cli)
    return console.replace(generated, b"T") == cli.replace(
        json.loads(cli)["generated_at"].encode(), b"T")


def pdf_text(served: Served, pdf: bytes) -> bytes:
    path = served.fleet.workdir / "read.pdf"
    path.write_bytes(pdf)
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True,
                          check=True, timeout=60).stdout


def test_the_report_page_shows_the_summary_exceptions_and_rows_for_its_filters(served):
    with browser(served, "audrey") as client:
        page = client.get(REPORT)
        assert page.status_code == 200, page.text[:500]
        text = page.text
        assert 'id="compliance-summary"' in text
        assert text_of(text, "summary-office-moderate-in-scope") == "3"
        assert text_of(text, "summary-office-moderate-compliant") == "1"
        assert text_of(text, "summary-office-moderate-share") == "33.3 %"
        assert text_of(text, "summary-lab-moderate-share") == "50.0 %"
        assert text_of(text, "summary-office-critical-in-scope") == "3"
        assert text_of(text, "report-rows-count") == "8"  # tool x 5 + ssl x 3
        assert "failed at 2026-11-25T00:01:00+00:00" in text  # desk-1's reason
        releases = text.split('id="compliance-releases"')[1].split("</table>")[0]
        assert "releases/ssl/3.0.1/ssl.tar" in releases and releases.count("<tr>") == 4
        assert 'href="/console/compliance/report/csv"' in text and 'id="export-pdf"' in text

        office = client.get(REPORT, params={"group": "office", "severity": "moderate"}).text
        assert text_of(office, "report-rows-count") == "3"
        assert "summary-lab-moderate" not in office and "summary-office-critical" not in office
        assert ('href="/console/compliance/report/csv?group=office&amp;severity=moderate"'
                in office)
        paged = client.get(REPORT, params={"group": "office", "per_page": 2, "page": 2}).text
        assert text_of(paged, "report-rows-shown") == "3–4"
        assert text_of(paged, "report-rows-count") == "6"
        assert paged.count('<tr class="c-') - paged.split('id="compliance-rows"')[0].count(
            '<tr class="c-') == 2
        assert ('href="/console/compliance/report?group=office&amp;per_page=2&amp;page=3"'
                in paged and 'id="report-rows-previous"' in paged)
        assert 'id="report-rows-pages"' not in text
        later = client.get(REPORT, params={"since": "2999-01-01"}).text
        assert text_of(later, "report-rows-count") == "0"
        assert 'id="compliance-summary-empty"' in later

        for field, value in (("group", "Not A Group!"), ("severity", "urgent"),
                             ("since", "last tuesday"), ("page", "0"),
                             ("per_page", "5000")):
            refused = client.get(REPORT, params={field: value})
            assert refused.status_code == 400, (field, refused.status_code)
            heading = refused.text.split("<h1>")[1].split("</h1>")[0]
            assert heading.startswith(f"{field} ") and "--" not in heading, heading
            if field in ("group", "severity", "since"):
                assert client.get(f"{REPORT}/csv", params={field: value}).status_code == 400
        assert client.get(f"{REPORT}/xlsx").status_code == 400
        assert client.get("/console/compliance").text.count(REPORT) >= 1


@pytest.mark.parametrize("filters", [(), ("--group", "office", "--severity", "moderate"),
                                     ("--since", "2000-01-01", "--group", "lab")])
def test_each_download_is_the_file_the_cli_writes_for_the_same_filters(served, filters):
    params = dict(zip([f.removeprefix("--") for f in filters[::2]], filters[1::2],
                      strict=True))
    with browser(served, "audrey") as client:
        for output_format in ("csv", "json", "html", "pdf"):
            answer = client.get(f"{REPORT}/{output_format}", params=params)
            assert answer.status_code == 200, answer.text[:300]
            disposition = answer.headers["content-disposition"]
            assert disposition.startswith('attachment; filename="compliance-')
            assert disposition.endswith(f'.{output_format}"')
            cli = served.cli_report(output_format, *filters)
            if output_format == "csv":
                assert answer.content == cli
                assert answer.headers["content-type"].startswith("text/csv")
                rows = rows_of(answer.content)
                assert rows and all(row["group"] == params.get("group", row["group"])
                                    for row in rows)
            elif output_format in ("json", "html"):
                assert same_but_time(answer.content, cli)
            else:
                assert answer.content.startswith(b"%PDF-") and cli.startswith(b"%PDF-")
                assert answer.headers["content-type"] == "application/pdf"
                assert same_but_time(pdf_text(served, answer.content),
                                     pdf_text(served, cli))
        # One report, one PDF: the console's PDF is what the CLI's render gives that report.
        pdf = client.get(f"{REPORT}/pdf", params=params).content
        report = json.loads(client.get(f"{REPORT}/json", params=params).content)
        report["generated_at"] = re.search(
            r"Generated: (\S+)", pdf_text(served, pdf).decode()).group(1)
        assert render_export(report, "pdf") == pdf
        data = client.get(f"{REPORT}/json", params=params).json()
        assert data["filters"]["group"] == params.get("group")
        assert len(data["rows"]) == len(rows_of(client.get(f"{REPORT}/csv",
                                                           params=params).content))


def test_an_admin_adds_and_removes_exceptions_audited_and_reflected_in_the_report(served):
    desk1 = served.devices["desk-1"]
    expires = (datetime.now(UTC) + timedelta(days=30)).date().isoformat()
    with browser(served, "alice") as client:
        page = client.get(EXCEPTIONS)
        assert 'id="exception-add"' in page.text and 'id="exceptions-none"' in page.text
        token = csrf_of(page.text)
        added = client.post(f"{EXCEPTIONS}/add", data={
            "csrf_token": token, "device": "desk-1", "release": "tool@2.0.0",
            "reason": "vendor <b>hotfix</b> pending", "expires": expires})
        assert added.status_code == 303 and added.headers["location"].endswith("done=added")
        [(actor, subject, detail)] = served.audit("exception.add")
        assert (actor, subject) == ("admin:alice", desk1)
        assert detail["release"] == TOOL and detail["expires_at"].startswith(expires)
        # The CLI records the same action with the same detail, its actor admin:LOGIN.
        served.cli("exceptions", "add", "rig-1", "tool@2.0.0", "--reason", "lab rebuild",
                   "--expires", expires)
        cli_actor, _, cli_detail = served.audit("exception.add")[1]
        assert cli_actor.startswith("admin:") and cli_detail.keys() == detail.keys()

        listed = client.get(EXCEPTIONS).text
        assert 'id="exceptions-table"' in listed and text_of(listed, "exceptions-count") == "2"
        assert "vendor &lt;b&gt;hotfix&lt;/b&gt; pending" in listed and "<b>hotfix" not in listed
        report_page = client.get(REPORT, params={"group": "office"}).text
        assert "excepted by admin:alice until" in report_page
        assert text_of(report_page, "summary-office-moderate-in-scope") == "2"
        office_csv = client.get(f"{REPORT}/csv", params={"group": "office"}).content
        assert office_csv == served.cli_report("csv", "--group", "office")
        [row] = [r for r in rows_of(office_csv) if r["device"] == "desk-1"
                 and r["name"] == "tool"]
        assert row["status"] == "excepted" and row["in_scope"] == "False"

        for fields, field in (({"reason": "  "}, "reason"), ({"expires": "2001-01-01"},
                                                             "expires"),
                              ({"expires": "soon"}, "expires"),
                              ({"device": "no-such-desk"}, "device"),
                              ({"release": "nothing@9"}, "release")):
            form = {"csrf_token": token, "device": "desk-2", "release": "tool@2.0.0",
                    "reason": "why", "expires": expires, **fields}
            refused = client.post(f"{EXCEPTIONS}/add", data=form)
            assert refused.status_code == 400, (fields, refused.text[:300])
            assert f'data-field="{field}"' in refused.text, fields
            assert field in text_of(refused.text, "exception-error")
            assert "--" not in text_of(refused.text, "exception-error")
        assert len(served.audit("exception.add")) == 2  # nothing half-applied

        removed = client.post(f"{EXCEPTIONS}/remove", data={
            "csrf_token": token, "device": desk1, "release": TOOL})
        assert removed.status_code == 303
        assert served.audit("exception.remove") == [("admin:alice", desk1,
                                                     {"release": TOOL})]
        again = client.post(f"{EXCEPTIONS}/remove", data={
            "csrf_token": token, "device": desk1, "release": TOOL})
        assert again.status_code == 400 and "no exception to remove" in again.text
        assert "excepted" not in client.get(REPORT, params={"group": "office"}).text
        assert client.post(f"{EXCEPTIONS}/add", data={
            "device": "desk-2", "release": "tool", "reason": "x", "expires": expires,
        }).status_code == 403  # no CSRF token


def test_expired_exceptions_are_marked_and_no_longer_count(served):
    with sqlite3.connect(served.fleet.hub_dir / "hub.db") as db:
        db.execute("INSERT OR REPLACE INTO compliance_exceptions (device_id, release, "
                   "reason, expires_at, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?)",
                   (served.devices["desk-2"], TOOL, "old waiver", "2020-01-01T00:00:00+00:00",
                    "2019-12-01T00:00:00+00:00", "admin:alice"))
    with browser(served, "audrey") as client:
        listed = client.get(EXCEPTIONS).text
        row = listed.split("old waiver")[1].split("</tr>")[0]
        assert '<td class="exception-state">expired</td>' in row
        office = client.get(REPORT, params={"group": "office"}).text
        assert "old waiver" not in office


def test_an_auditor_sees_the_exceptions_but_no_forms_and_a_forged_post_is_refused(served):
    expires = (datetime.now(UTC) + timedelta(days=3)).date().isoformat()
    before = served.audit("exception.add"), served.audit("exception.remove")
    with browser(served, "audrey") as client:
        page = client.get(EXCEPTIONS)
        assert page.status_code == 200 and 'id="exceptions-table"' in page.text
        assert 'id="exception-add"' not in page.text and "exception-remove" not in page.text
        token = csrf_of(page.text)
        forged = client.post(f"{EXCEPTIONS}/add", data={
            "csrf_token": token, "device": "desk-0", "release": "tool", "reason": "x",
            "expires": expires})
        assert forged.status_code == 403
        forged = client.post(f"{EXCEPTIONS}/remove", data={
            "csrf_token": token, "device": served.devices["rig-1"], "release": TOOL})
        assert forged.status_code == 403
    assert (served.audit("exception.add"), served.audit("exception.remove")) == before
    assert "rig-1" in served.cli("exceptions", "list").decode()


def test_the_cli_refuses_the_same_filters_naming_its_options(tmp_path):
    from click.testing import CliRunner

    from hub.cli.main import main

    for option, value in (("--group", "Not A Group!"), ("--severity", "urgent"),
                          ("--since", "last tuesday")):
        result = CliRunner().invoke(main, ["report", "compliance", option, value,
                                           "--dir", str(tmp_path / "no-hub")])
        assert result.exit_code != 0 and f"{option} " in result.output, result.output
        assert "Traceback" not in result.output
