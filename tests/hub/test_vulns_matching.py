"""Matching device software against feed files in the real formats (OSV records, the
Debian security tracker's JSON, tests/hub/vuln_feeds/): what matches, and the false
positives looser matchers report, each pinned beside the looser rule that would have
flagged it (so the trap is shown to bite)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.inventory.software import DeviceSoftware, InstalledPackage, OperatingSystem
from hub.vulns.advisories import RangeEvent, Statement, StatementKind
from hub.vulns.debian_releases import device_release
from hub.vulns.feed_files import read_feeds
from hub.vulns.matching import FeedIndex, Matcher, Verdict, judge
from tests.hub.vulns_fleet import BOOKWORM_PACKAGES, BULLSEYE_PACKAGES

FEEDS = Path(__file__).parent / "vuln_feeds"
BOOKWORM = OperatingSystem("debian", "12", "bookworm")
BULLSEYE = OperatingSystem("debian", "11", "bullseye")


@pytest.fixture(scope="module")
def advisories():
    return read_feeds([FEEDS])


@pytest.fixture(scope="module")
def index(advisories):
    return FeedIndex((a.record_id, s) for a in advisories for s in a.statements)


def device(os, rows, device_id="d1"):
    return DeviceSoftware(device_id, os, "6.1", "x86_64",
                          tuple(InstalledPackage(*row) for row in rows))


def findings_of(index, software):
    return {(f.record_id, f.package.name): f.judgement for f in Matcher(index).match(software)}


def statements_of(advisories, record_id):
    return next(a for a in advisories if a.record_id == record_id).statements


def test_a_bookworm_device_matches_exactly_what_its_release_and_sources_say(index):
    found = findings_of(index, device(BOOKWORM, BOOKWORM_PACKAGES))
    assert {key: j.verdict for key, j in found.items()} == {
        ("debian-tracker:openssl/CVE-2024-5535", "libssl3"): Verdict.FIXABLE,
        ("DEBIAN-CVE-2024-5535", "libssl3"): Verdict.FIXABLE,
        ("debian-tracker:openssh/CVE-2024-6387", "openssh-server"): Verdict.FIXABLE,
        ("debian-tracker:zlib/CVE-2023-45853", "zlib1g"): Verdict.UNFIXED,
        ("debian-tracker:curl/CVE-2025-0725", "libcurl4"): Verdict.UNDETERMINED,
        ("DEBIAN-CVE-2024-99001", "libpng16-16"): Verdict.FIXABLE,
    }
    assert found[("debian-tracker:openssl/CVE-2024-5535", "libssl3")].fixed_version == \
        "3.0.15-1~deb12u1"


def test_source_keyed_data_matches_a_device_that_lists_only_binaries(index):
    """libssl3 is built from openssl: the feeds name openssl, the device has no package of
    that name. Matching by binary name would find nothing."""
    software = device(BOOKWORM, [("libssl3", "3.0.11-1~deb12u2", "amd64", "openssl",
                                  "3.0.11-1~deb12u2")])
    assert ("debian-tracker:openssl/CVE-2024-5535", "libssl3") in findings_of(index, software)
    assert index.about("bookworm", "libssl3") == []


def test_a_cve_bookworm_fixed_long_ago_is_not_reported_though_a_later_release_range_covers_it(
        advisories, index):
    """glibc CVE-2023-4911: fixed in bookworm by 2.36-9+deb12u3; Debian:13's range ends at
    2.37-12, which a release-blind matcher applies to bookworm's 2.36-9+deb12u4."""
    software = device(BOOKWORM, [("libc6", "2.36-9+deb12u4", "amd64", "glibc",
                                  "2.36-9+deb12u4")])
    assert not [k for k in findings_of(index, software) if k[0] == "DEBIAN-CVE-2023-4911"]
    trixie = next(s for s in statements_of(advisories, "DEBIAN-CVE-2023-4911")
                  if s.note == "Debian:13")
    assert judge(trixie, "2.36-9+deb12u4").verdict is Verdict.FIXABLE  # the trap
    older = device(BOOKWORM, [("libc6", "2.36-9+deb12u2", "amd64", "glibc", "2.36-9+deb12u2")])
    assert findings_of(index, older)[("DEBIAN-CVE-2023-4911", "libc6")].fixed_version == \
        "2.36-9+deb12u3"


def test_the_tracker_old_fix_is_not_affected_and_an_old_cve_stays_quiet(index):
    """CVE-2016-2107: bookworm resolved at 1.0.2h-1, long before bookworm's 3.0.x."""
    found = findings_of(index, device(BOOKWORM, BOOKWORM_PACKAGES))
    assert not [k for k in found if "CVE-2016-2107" in k[0]]


def test_a_debian_11_affected_entry_says_nothing_about_a_debian_12_device(advisories, index):
    """libxml2 CVE-2024-25062: Debian:11 open-ended (introduced 0, never fixed there);
    the record has no Debian:12 entry."""
    bookworm = device(BOOKWORM, [("libxml2", "2.9.14+dfsg-1.3~deb12u1", "amd64", "libxml2",
                                  "2.9.14+dfsg-1.3~deb12u1")])
    assert findings_of(index, bookworm) == {}
    bullseye_statement = statements_of(advisories, "DEBIAN-CVE-2024-25062")[0]
    assert judge(bullseye_statement, "2.9.14+dfsg-1.3~deb12u1").verdict is Verdict.UNFIXED
    bullseye = findings_of(index, device(BULLSEYE, BULLSEYE_PACKAGES))
    assert bullseye[("DEBIAN-CVE-2024-25062", "libxml2")].verdict is Verdict.UNFIXED


def test_fixed_in_0_means_the_release_was_never_affected(advisories, index):
    """sudo CVE-2023-7090: bookworm fixed_version 0, bullseye open."""
    found = findings_of(index, device(BOOKWORM, BOOKWORM_PACKAGES))
    assert not [k for k in found if "CVE-2023-7090" in k[0]]
    bullseye = findings_of(index, device(BULLSEYE, BULLSEYE_PACKAGES))
    assert bullseye[("debian-tracker:sudo/CVE-2023-7090", "sudo")].verdict is Verdict.UNFIXED
    assert "postponed" in bullseye[("debian-tracker:sudo/CVE-2023-7090", "sudo")].why
    openssh_bullseye = [k for k in bullseye if "CVE-2024-6387" in k[0]]
    assert openssh_bullseye == []  # bullseye: fixed_version 0 for regreSSHion


def test_a_pypi_record_never_matches_a_debian_package_of_the_same_name(advisories, index):
    """PYSEC-2023-175 names PyPI `pillow` < 10.0.1; Debian's source `pillow` 9.4.0 builds
    python3-pil against the system libwebp. Name and version would match."""
    pysec = statements_of(advisories, "PYSEC-2023-175")[0]
    assert pysec.package == "pillow" and pysec.kind is StatementKind.OTHER_ECOSYSTEM
    found = findings_of(index, device(BOOKWORM, BOOKWORM_PACKAGES))
    assert not [k for k in found if k[0] == "PYSEC-2023-175" or k[1] == "python3-pil"]


def test_a_cpe_only_record_matches_no_debian_package(advisories, index):
    cpe = statements_of(advisories, "CVE-2024-2511")
    assert [s.kind for s in cpe] == [StatementKind.NO_PACKAGE]
    found = findings_of(index, device(BOOKWORM, BOOKWORM_PACKAGES))
    assert not [k for k in found if k[0] == "CVE-2024-2511"]


def test_a_binnmu_compares_its_source_version(index):
    """libpng16-16 1.6.39-2+b1 is a rebuild of source 1.6.39-2, which is last_affected (and
    listed): comparing the binary version would call it past the range."""
    software = device(BOOKWORM, [("libpng16-16", "1.6.39-2+b1", "amd64", "libpng1.6",
                                  "1.6.39-2")])
    judgement = findings_of(index, software)[("DEBIAN-CVE-2024-99001", "libpng16-16")]
    assert judgement.verdict is Verdict.FIXABLE and judgement.last_affected == "1.6.39-2"
    rebuilt_fixed = device(BOOKWORM, [("libpng16-16", "1.6.39-3+b1", "amd64", "libpng1.6",
                                       "1.6.39-3")])
    assert findings_of(index, rebuilt_fixed) == {}


def _tracker(fixed, status="resolved"):
    return Statement(ecosystem="Debian", release="bookworm", package="p",
                     kind=StatementKind.TRACKER, status=status, fixed_version=fixed)


@pytest.mark.parametrize(("installed", "fixed", "verdict"), [
    ("1:9.2p1-2+deb12u2", "1:9.2p1-2+deb12u3", Verdict.FIXABLE),
    ("1:9.2p1-2+deb12u3", "1:9.2p1-2+deb12u3", Verdict.NOT_AFFECTED),
    ("1:1.9-1", "2.0-1", Verdict.NOT_AFFECTED),       # an epoch outranks any upstream
    ("2.5-1", "1:2.0-1", Verdict.FIXABLE),
    ("3.0.13-1~deb12u1", "3.0.13-1", Verdict.FIXABLE),  # ~ sorts before the release
    ("3.0.13-1~deb12u1", "3.0.13-1~deb12u1", Verdict.NOT_AFFECTED),
    ("1.0~rc1-1", "1.0-1", Verdict.FIXABLE),
    ("2.36-9+deb12u10", "2.36-9+deb12u3", Verdict.NOT_AFFECTED),  # 10 > 3, not "1" < "3"
    ("2.36-9+deb12u2", "2.36-9+deb12u3", Verdict.FIXABLE),
    ("7.88.1-10+deb12u8", "7.88.1-10+deb12u6", Verdict.NOT_AFFECTED),
    ("1.2.3-1", "0", Verdict.NOT_AFFECTED),
])
def test_debian_version_ordering(installed, fixed, verdict):
    assert judge(_tracker(fixed), installed).verdict is verdict


def test_osv_ranges_with_introduced_fixed_last_affected_and_versions():
    def osv(*ranges, versions=()):
        return Statement(ecosystem="Debian", release="bookworm", package="p",
                         kind=StatementKind.OSV_AFFECTED, note="Debian:12",
                         ranges=tuple(tuple(RangeEvent(k, v) for k, v in r) for r in ranges),
                         versions=versions)

    two = osv([("introduced", "1.0-1"), ("fixed", "1.2-1"), ("introduced", "2.0-1"),
               ("fixed", "2.0-3")])
    assert judge(two, "0.9-1").verdict is Verdict.NOT_AFFECTED
    assert judge(two, "1.1-1").fixed_version == "1.2-1"
    assert judge(two, "1.5-1").verdict is Verdict.NOT_AFFECTED
    assert judge(two, "2.0-2").fixed_version == "2.0-3"
    assert judge(two, "2.0-3").verdict is Verdict.NOT_AFFECTED
    assert judge(osv([("introduced", "0")]), "9.9-9").verdict is Verdict.UNFIXED
    last = osv([("introduced", "0"), ("last_affected", "1.5-2")])
    assert judge(last, "1.5-2").verdict is Verdict.FIXABLE
    assert judge(last, "1.5-2.1").verdict is Verdict.NOT_AFFECTED
    listed = osv(versions=("1.0-1", "1:1.1-1"))
    assert judge(listed, "1.0-1").verdict is Verdict.UNFIXED
    assert judge(listed, "1.1-1").verdict is Verdict.NOT_AFFECTED  # epoch 0 is not 1:


def test_a_device_that_is_not_debian_matches_nothing(index):
    ubuntu = OperatingSystem("ubuntu", "22.04", "jammy")
    assert findings_of(index, device(ubuntu, BOOKWORM_PACKAGES)) == {}
    assert "not debian" in device_release(ubuntu).why
    no_codename = OperatingSystem("debian", "12", "")
    assert device_release(no_codename).codename == "bookworm"


def test_one_verdict_per_source_version_serves_the_whole_fleet(index):
    matcher = Matcher(index)
    fleet = [device(BOOKWORM, BOOKWORM_PACKAGES, f"d{n}") for n in range(50)]
    findings = matcher.match_all(fleet)
    assert len(findings) == 50 * 6
    assert len(matcher._memo) == len(BOOKWORM_PACKAGES)


def test_findings_per_group_name_the_same_exposures_as_findings_per_device(index):
    fleet = [device(BOOKWORM, BOOKWORM_PACKAGES, f"b{n}") for n in range(6)] + \
        [device(BULLSEYE, BULLSEYE_PACKAGES, f"o{n}") for n in range(3)]
    groups = {software.device_id: ("a" if n % 2 else "b") for n, software in enumerate(fleet)}
    per_device = {(f.device_ids[0], f.package.name, f.record_id)
                  for f in Matcher(index).match_all(fleet)}
    grouped = Matcher(index).match_fleet(fleet, groups)
    assert {(d, f.package.name, f.record_id) for f in grouped for d in f.device_ids} == \
        per_device
    assert all(len({groups[d] for d in f.device_ids}) == 1 for f in grouped)
    assert len(grouped) < len(per_device)
