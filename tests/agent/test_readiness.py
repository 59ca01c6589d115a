"""Release requirements (agent/wire/requirements.py) and the one evaluation agent and hub
share (agent/readiness.py): each kind met and unmet, Debian version-range edges (epochs,
`~`, revisions), validation errors that name the field."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from agent.errors import WireFormatError
from agent.readiness import DeviceFacts, in_range, reason, unmet_requirements
from agent.wire.release import ReleaseManifest
from agent.wire.requirements import Requirements, parse_range

BOOKWORM = DeviceFacts(os_id="debian", os_version_id="12", architecture="x86_64",
                       kernel="6.1.0-18-amd64", memory_bytes=4 << 30,
                       disk_free_bytes=10 << 30,
                       packages={"libssl3": ("3.0.11-1~deb12u2",), "libc6": ("2.36-9", "2.36-9"),
                                 "legacy": ("1:0.9-1",)})


def requires(**fields) -> Requirements:
    return Requirements.model_validate(fields)


def kinds(req: Requirements, facts: DeviceFacts = BOOKWORM) -> list[str]:
    return [item.kind for item in unmet_requirements(req, facts)]


@pytest.mark.parametrize(("version", "clause", "holds"), [
    ("1:1.0-1", ">= 2.0", True),          # an epoch outranks any upstream version
    ("2.0-1", ">= 1:1.0", False),
    ("1.0~rc1-1", ">= 1.0", False),       # ~ sorts before the release
    ("1.0~rc1-1", "<< 1.0", True),
    ("1.0-1~deb12u1", "<< 1.0-1", True),  # a backport/stable update below the revision
    ("1.0-1+deb12u1", ">> 1.0-1", True),
    ("1.0-1", "= 1.0-1", True),
    ("1.0-1", "!= 1.0-1", False),
    ("1.0-1", "== 1.0-1", True),
    ("1.0", "= 1.0-0", True),             # dpkg: an absent revision equals "0"
    ("6.1.0-18-amd64", ">= 6.1", True),   # a kernel release string
    ("6.1.0-18-amd64", "< 6.2", True),
    ("12", ">= 12", True),
    ("11", ">= 12", False),
])
def test_debian_version_ranges_follow_dpkg_ordering(version, clause, holds):
    assert in_range(version, parse_range(clause)) is holds


def test_a_range_holds_only_when_every_clause_does():
    both = parse_range(">= 12, << 13")
    assert in_range("12.5", both) and not in_range("13", both) and not in_range("11", both)


def test_what_is_no_version_is_not_known_to_be_in_range():
    assert not in_range("", parse_range(">= 1"))
    assert not in_range("not a version!", parse_range(">= 1"))


def test_os_id_and_version():
    assert kinds(requires(os={"id": "debian", "version": ">= 12, << 13"})) == []
    assert kinds(requires(os={"id": "ubuntu"})) == ["os"]
    [unmet] = unmet_requirements(requires(os={"id": "debian", "version": ">= 13"}), BOOKWORM)
    assert (unmet.kind, str(unmet)) == ("os-version", "os debian >= 13 (found debian 12)")
    testing = DeviceFacts(os_id="debian", os_version_id="")  # Debian testing: no VERSION_ID
    assert kinds(requires(os={"id": "debian", "version": ">= 12"}), testing) == ["os-version"]


def test_architecture_names_of_debian_and_uname_are_one():
    assert kinds(requires(architectures=["amd64"])) == []
    assert kinds(requires(architectures=["x86_64"])) == []
    assert kinds(requires(architectures=["arm64", "armhf"])) == ["architecture"]
    assert kinds(requires(architectures=["arm64"]),
                 DeviceFacts(architecture="aarch64")) == []


def test_ram_and_free_disk_minimums_and_unknown_ram():
    assert kinds(requires(min_ram="4 GiB", min_free_disk="10 GiB")) == []
    assert kinds(requires(min_ram="5 GiB", min_free_disk=(10 << 30) + 1)) == ["ram", "disk"]
    [unmet] = unmet_requirements(requires(min_ram="1 MiB"), DeviceFacts())
    assert str(unmet) == "RAM >= 1.0 MiB (found unknown)"


def test_kernel_range():
    assert kinds(requires(kernel=">= 6.1, << 6.2")) == []
    [unmet] = unmet_requirements(requires(kernel=">= 6.6"), BOOKWORM)
    assert str(unmet) == "kernel >= 6.6 (found 6.1.0-18-amd64)"


def test_packages_present_in_range_or_absent():
    assert kinds(requires(packages=[{"name": "libssl3", "version": ">= 3.0.11-1~deb12u2"},
                                    {"name": "libc6"}, {"name": "telnetd", "absent": True}])) == []
    [unmet] = unmet_requirements(
        requires(packages=[{"name": "libssl3", "version": ">= 3.0.11-1~deb12u3"}]), BOOKWORM)
    assert str(unmet) == ("package libssl3 >= 3.0.11-1~deb12u3 "
                          "(found libssl3 3.0.11-1~deb12u2)")
    [unmet] = unmet_requirements(requires(packages=[{"name": "nginx"}]), BOOKWORM)
    assert str(unmet) == "package nginx (found not installed)"
    [unmet] = unmet_requirements(requires(packages=[{"name": "legacy", "absent": True}]),
                                 BOOKWORM)
    assert str(unmet) == "no package legacy (found legacy 1:0.9-1)"
    # absent within a range: only the old versions are in the way (the epoch counts)
    assert kinds(requires(packages=[{"name": "legacy", "absent": True,
                                     "version": "<< 1.0"}])) == []
    assert kinds(requires(packages=[{"name": "legacy", "absent": True,
                                     "version": "<< 1:1.0"}])) == ["package"]


def test_every_unmet_requirement_is_in_the_reason_in_declared_order():
    req = requires(os={"id": "debian", "version": ">= 13"}, architectures=["arm64"],
                   kernel=">= 7", packages=[{"name": "nginx"}])
    assert reason(unmet_requirements(req, BOOKWORM)) == (
        "requirements not met: os debian >= 13 (found debian 12); architecture arm64 "
        "(found x86_64); kernel >= 7 (found 6.1.0-18-amd64); package nginx "
        "(found not installed)")
    assert unmet_requirements(None, BOOKWORM) == ()


def test_sizes_are_bytes_or_a_number_and_a_binary_unit():
    assert requires(min_ram="2 GiB", min_free_disk="1.5MiB").min_free_disk == 1572864
    assert requires(min_ram=1000).min_ram == 1000


RELEASE = """name = "app"
version = "1.0.0"
severity = "important"
category = "application"
[install]
type = "file-tree"
root = "/opt/app"
"""


@pytest.mark.parametrize(("table", "named", "says"), [
    ('[requires]\nkernel = ">= six"\n', "requires.kernel", "'six' is not a Debian version"),
    ('[requires]\nkernel = "~> 6.1"\n', "requires.kernel",
     "'~> 6.1' is not OP VERSION (OP one of >=, <=, >>, <<, =, >, <, !=), in version range "
     "'~> 6.1'"),
    ('[requires]\nmin_ram = "2 GB"\n', "requires.min_ram", "is not a size"),
    ('[requires]\narchitectures = ["AMD64"]\n', "requires.architectures",
     "architectures[0]"),
    ('[requires]\nos = { version = ">= 12" }\n', "requires.os.id", ""),
    ('[requires]\nos = { id = "debian", version = ">= 12,," }\n', "requires.os.version", ""),
    ('[[requires.packages]]\nname = "libc6"\nversion = ">= 2.36 -9"\n',
     "requires.packages.0.version", ""),
    ('[[requires.packages]]\nname = "Libc6"\n', "requires.packages.0.name", ""),
    ('[[requires.packages]]\nname = "a1"\n[[requires.packages]]\nname = "a1"\n',
     "requires", "named twice"),
    ('[requires]\nram = 5\n', "requires.ram", ""),
])
def test_a_bad_requirement_is_refused_at_publish_naming_the_field(tmp_path, table, named, says):
    path = tmp_path / "RELEASE.toml"
    path.write_text(RELEASE + table)
    with pytest.raises(WireFormatError) as refused:
        ReleaseManifest.from_toml_file(path)
    message = str(refused.value)
    assert named in message and says in message, message


def test_requirements_travel_in_the_signed_custom_fields_and_read_back_equal(tmp_path):
    path = tmp_path / "RELEASE.toml"
    path.write_text(RELEASE + '[requires]\nos = { id = "debian", version = ">= 12" }\n'
                    'min_ram = "1 GiB"\n[[requires.packages]]\nname = "libc6"\n'
                    'version = ">= 2.36"\n')
    manifest = ReleaseManifest.from_toml_file(path)
    again = ReleaseManifest.model_validate(manifest.model_dump(mode="json"))
    assert again.requires == manifest.requires and again.requires.min_ram == 1 << 30


PAIRS = [("1.0", "1.0-0"), ("1:1.0", "2.0"), ("1.0~rc1", "1.0"), ("1.0~~", "1.0~"),
         ("1.0-1~deb12u1", "1.0-1"), ("1.0-1+deb12u1", "1.0-1+b1"), ("2.36-9+deb12u4", "2.36-9"),
         ("1.0a", "1.0+"), ("1.0.0", "1.0"), ("0:1.0", "1.0"), ("6.1.0-18-amd64", "6.1.0-9"),
         ("3.0.11-1~deb12u2", "3.0.11-1~deb12u10"), ("1.2.3+dfsg", "1.2.3"), ("10", "9")]


@pytest.mark.skipif(not shutil.which("dpkg"), reason="dpkg is the reference ordering")
@pytest.mark.parametrize(("left", "right"), PAIRS)
def test_range_clauses_agree_with_dpkg_compare_versions(left, right):
    for operator, dpkg_op in ((">=", "ge"), ("<=", "le"), (">>", "gt"), ("<<", "lt"),
                              ("=", "eq"), ("!=", "ne")):
        dpkg = subprocess.run(["dpkg", "--compare-versions", left, dpkg_op, right]).returncode
        assert in_range(left, parse_range(f"{operator} {right}")) is (dpkg == 0), \
            (left, operator, right)
