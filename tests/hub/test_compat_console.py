"""The compatibility matrix in the console, against a real `meisitong-hub serve` process
over HTTP: the page and its JSON show the flagged model with its counts and p-values,
escape what devices report, and list the releases that have results."""

from __future__ import annotations

import subprocess

import httpx
import pytest

from agent.wire.result import Outcome
from hub.hub_dir import HubDir
from tests.compat_fleet import enroll, publish_tool, report, send_inventory
from tests.processes import BIN_HUB, Fleet, free_port

PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("compat-console")
    fleet = Fleet(workdir, workdir / "hub", f"http://127.0.0.1:{free_port('127.0.0.1')}")
    try:
        fleet.serve_new_hub()
        subprocess.run([BIN_HUB, "admins", "add", "audrey", "--role", "auditor",
                        "--password-stdin", "--dir", str(fleet.hub_dir)],
                       input=PASSWORD + "\n", text=True, check=True, capture_output=True,
                       timeout=60)
        hub = publish_tool(HubDir(fleet.hub_dir), workdir)
        for index in range(4):
            laptop = enroll(hub, f"laptop-{index}", "office")
            send_inventory(hub, laptop, "<b>ThinkPad</b> X13")
            report(hub, laptop, Outcome.FAILED if index < 3 else Outcome.INSTALLED)
        for index in range(30):
            desk = enroll(hub, f"desk-{index}", "office")
            send_inventory(hub, desk, "OptiPlex 7090")
            report(hub, desk, Outcome.INSTALLED)
        browser = httpx.Client(base_url=fleet.hub_url, headers={"origin": fleet.hub_url},
                               timeout=60)
        answer = browser.post("/console/login", data={"name": "audrey", "password": PASSWORD,
                                                      "next": "/console/compat"})
        assert answer.status_code in (200, 303), answer.text[:300]
        yield browser
        browser.close()
    finally:
        fleet.stop_all()


def test_the_page_flags_the_failing_model_and_escapes_what_devices_report(served):
    page = served.get("/console/compat", params={"release": "tool@2.0.0"})
    assert page.status_code == 200, page.text[:500]
    assert "34</strong> devices reported" in page.text
    assert 'id="compat-flagged">1</strong> flagged' in page.text
    flagged = page.text.split('class="compat-row flagged"')[1].split("</tr>")[0]
    assert "model=&lt;b&gt;ThinkPad&lt;/b&gt; X13" in flagged and "<b>ThinkPad" not in flagged
    assert "3/4" in flagged and "0/30" in flagged and "0.000668" in flagged
    assert "one-sided Fisher exact test" in page.text


def test_the_json_is_what_the_cli_gives_and_the_index_lists_releases(served):
    data = served.get("/console/api/compat", params={"release": "tool"}).json()
    [flag] = [c for c in data["combinations"] if c["flagged"]]
    assert (flag["failures"], flag["devices"], flag["rest_devices"]) == (3, 4, 30)
    assert flag["p_value"] == pytest.approx(4 / 5984)
    index = served.get("/console/api/compat").json()
    assert index["releases"][0]["target"] == "releases/tool/2.0.0/tool.tar"
    assert index["releases"][0]["devices"] == 34
    assert "tool 2.0.0" in served.get("/console/compat").text
    missing = served.get("/console/api/compat", params={"release": "nothing"})
    assert missing.status_code == 404 and "no published release" in missing.json()["error"]
