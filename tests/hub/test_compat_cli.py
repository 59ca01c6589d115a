"""`meisitong-hub compat RELEASE` on a real hub directory: devices enrolled, inventories
and results ingested through the hub's own code, the matrix in each format."""

import csv
import io
import json

import pytest

from agent.wire.result import Outcome
from tests.compat_fleet import enroll, make_hub, report, run, send_inventory

FPRINTD = ("fprintd", "1.94.2-2", "amd64", "fprintd", "1.94.2-2")


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    """4 ThinkPads (3 reverted), 30 OptiPlexes (all installed), one device that reported
    without an inventory, one that never reported."""
    hub = make_hub(tmp_path_factory.mktemp("compat"))
    for index in range(4):
        laptop = enroll(hub, f"laptop-{index}", "office")
        send_inventory(hub, laptop, "ThinkPad X13 Gen 2", extra=[FPRINTD])
        report(hub, laptop, Outcome.REVERTED if index < 3 else Outcome.INSTALLED)
    for index in range(30):
        desk = enroll(hub, f"desk-{index}", "office" if index < 20 else "lab")
        send_inventory(hub, desk, "OptiPlex 7090", version_id="12" if index % 2 else "11")
        report(hub, desk, Outcome.INSTALLED)
    report(hub, enroll(hub, "blind-1", "office"), Outcome.INSTALLED)
    send_inventory(hub, enroll(hub, "idle-1", "office"), "OptiPlex 7090")
    return hub


def test_json_flags_the_failing_model_with_counts_rates_and_p_values(fleet):
    result = run(fleet, "compat", "tool", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["release"] == "releases/tool/2.0.0/tool.tar"
    assert data["reporting_devices"] == 34 and data["failures"] == 3
    assert data["outcomes"] == {"installed": 31, "reverted": 3}
    assert len(data["without_inventory"]) == 1
    assert "Fisher" in data["method"] and "Holm" in data["method"]
    [flag] = [c for c in data["combinations"] if c["flagged"]]
    assert {(a["kind"], a["value"]) for a in flag["attributes"]} == {
        ("model", "ThinkPad X13 Gen 2"), ("package", "fprintd"),
        ("package-version", "fprintd 1.94.2-2")}
    assert (flag["failures"], flag["devices"], flag["rest_failures"], flag["rest_devices"]) \
        == (3, 4, 0, 30)
    assert flag["failure_rate"] == 0.75 and flag["outcomes"] == {"installed": 1, "reverted": 3}
    assert flag["p_value"] == pytest.approx(4 / 5984)
    assert flag["adjusted_p"] <= 0.05
    # the OS versions are shown with their figures though neither is flagged
    debian11 = [c for c in data["combinations"]
                if {"kind": "os", "value": "debian 11"} in c["attributes"]]
    assert debian11 and debian11[0]["failures"] == 0 and not debian11[0]["flagged"]


def test_csv_has_one_row_per_combination(fleet):
    result = run(fleet, "compat", "tool@2.0.0", "--format", "csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert rows[0]["flagged"] == "yes"
    assert "model=ThinkPad X13 Gen 2" in rows[0]["attributes"]
    assert (rows[0]["failures"], rows[0]["devices"], rows[0]["reverted"]) == ("3", "4", "3")
    assert float(rows[0]["p_value"]) == pytest.approx(4 / 5984, rel=1e-5)
    assert all(row["flagged"] == "no" for row in rows[1:])


def test_table_names_the_test_and_the_flag(fleet):
    result = run(fleet, "compat", "tool")
    assert result.exit_code == 0, result.output
    assert "34 devices reported (31 installed, 3 reverted); 3 failures" in result.output
    assert "one-sided Fisher exact test" in result.output
    flag_line = next(line for line in result.output.splitlines() if "FLAG" in line)
    assert "model=ThinkPad X13" in flag_line and "3/4" in flag_line and "0/30" in flag_line


def test_group_filter_counts_only_that_groups_devices(fleet):
    data = json.loads(run(fleet, "compat", "tool", "--group", "lab", "--format",
                          "json").output)
    assert data["reporting_devices"] == 10 and data["failures"] == 0 and data["flagged"] == 0


def test_unknown_release_or_group_is_a_clear_error(fleet):
    result = run(fleet, "compat", "nothing")
    assert result.exit_code == 1 and "no published release 'nothing'" in result.output
    assert "Traceback" not in result.output
    result = run(fleet, "compat", "tool", "--group", "ghosts")
    assert result.exit_code == 1 and "'ghosts': no enrolled device" in result.output


def test_a_release_nobody_tried_yet_says_so(tmp_path):
    hub = make_hub(tmp_path)
    result = run(hub, "compat", "tool")
    assert result.exit_code == 0 and "no results to cross yet" in result.output
    data = json.loads(run(hub, "compat", "tool", "--format", "json").output)
    assert data["reporting_devices"] == 0 and data["combinations"] == []
