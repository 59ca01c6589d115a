"""`meisitong-hub readiness RELEASE` on a real hub directory: devices enrolled and
inventories ingested through the hub's own code (tests/compat_fleet.py), a release with
requirements published through the real `publish`; each format, --group, and errors."""

import csv
import io
import json

import pytest

from tests.compat_fleet import enroll, make_hub, run, send_inventory
from tests.fleet import tar_bytes

BIG = """name = "big"
version = "1.0.0"
severity = "moderate"
category = "application"
[install]
type = "file-tree"
root = "/opt/big"
[requires]
os = { id = "debian", version = ">= 12" }
architectures = ["amd64"]
min_ram = "4 GiB"
kernel = ">= 6.1"
[[requires.packages]]
name = "openssl"
version = ">= 3.0.11-1~deb12u1, << 4"
[[requires.packages]]
name = "fprintd"
absent = true
"""


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("readiness")
    hub = make_hub(workdir)  # publishes tool 2.0.0, without requirements
    (workdir / "BIG.toml").write_text(BIG)
    (workdir / "big.tar").write_bytes(tar_bytes({"bin/big": b"x"}))
    published = run(hub, "publish", str(workdir / "BIG.toml"), str(workdir / "big.tar"))
    assert published.exit_code == 0, published.output
    send_inventory(hub, enroll(hub, "ok-1", "office"), "OptiPlex")
    send_inventory(hub, enroll(hub, "old-1", "office"), "OptiPlex", version_id="11")
    send_inventory(hub, enroll(hub, "fp-1", "lab"), "ThinkPad",
                   extra=[("fprintd", "1.94.2-2", "amd64", "fprintd", "1.94.2-2")])
    enroll(hub, "new-1", "lab")  # no inventory yet
    return hub


def predicted(fleet, *args):
    result = run(fleet, "readiness", *args, "--format", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_json_says_who_is_ready_and_exactly_why_the_others_are_not(fleet):
    data = predicted(fleet, "big")
    assert data["release"] == "releases/big/1.0.0/big.tar"
    assert data["counts"] == {"ready": 1, "not-ready": 2, "unknown": 1}
    by_name = {d["name"]: d for d in data["devices"]}
    assert by_name["ok-1"]["status"] == "ready" and by_name["ok-1"]["reason"] == ""
    assert by_name["old-1"]["unmet"] == [{"kind": "os-version", "requirement":
                                          "os debian >= 12", "found": "debian 11"}]
    assert by_name["fp-1"]["reason"] == ("requirements not met: no package fprintd "
                                         "(found fprintd 1.94.2-2)")
    assert (by_name["new-1"]["status"], by_name["new-1"]["reason"]) == ("unknown",
                                                                         "no inventory yet")
    assert by_name["ok-1"]["inventory_at"] == "2026-11-25T00:00:00+00:00"
    assert data["requirements"]["min_ram"] == 4 << 30


def test_group_narrows_to_its_devices(fleet):
    data = predicted(fleet, "big@1.0.0", "--group", "lab")
    assert sorted(d["name"] for d in data["devices"]) == ["fp-1", "new-1"]


def test_a_release_without_requirements_is_ready_wherever_an_inventory_is(fleet):
    data = predicted(fleet, "tool")
    assert data["requirements"] is None
    assert data["counts"] == {"ready": 3, "not-ready": 0, "unknown": 1}


def test_csv_and_table(fleet):
    result = run(fleet, "readiness", "big", "--format", "csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert {row["name"]: row["status"] for row in rows} == {
        "ok-1": "ready", "old-1": "not-ready", "fp-1": "not-ready", "new-1": "unknown"}
    table = run(fleet, "readiness", "big")
    assert table.exit_code == 0, table.output
    assert "1 ready, 2 not-ready, 1 unknown" in table.output
    assert "debian 11" in table.output and "no inventory yet" in table.output


@pytest.mark.parametrize(("args", "says"), [
    (("nothing",), "no published release 'nothing'"),
    (("big", "--group", "nowhere"), "--group 'nowhere': no enrolled device is in it"),
])
def test_errors_are_one_line_and_a_non_zero_exit(fleet, args, says):
    result = run(fleet, "readiness", *args)
    assert result.exit_code == 1 and says in result.output and "Traceback" not in result.output


def test_publish_refuses_a_bad_requirement_naming_the_field_and_publishes_nothing(tmp_path):
    hub = make_hub(tmp_path)
    (tmp_path / "BAD.toml").write_text(BIG.replace('name = "big"', 'name = "bad"').replace(
        'min_ram = "4 GiB"', 'min_ram = "4 gigs"'))
    (tmp_path / "bad.tar").write_bytes(tar_bytes({"bin/bad": b"x"}))
    result = run(hub, "publish", str(tmp_path / "BAD.toml"), str(tmp_path / "bad.tar"))
    assert result.exit_code == 1 and "requires.min_ram" in result.output
    assert "'4 gigs' is not a size" in result.output
    assert "no published release 'bad'" in run(hub, "readiness", "bad").output
