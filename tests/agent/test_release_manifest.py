"""RELEASE.toml is validated as a whole; every error names the file and the key."""

from pathlib import Path

import pytest

from agent.errors import WireFormatError
from agent.wire.release import ReleaseManifest

GOOD = """
name = "demo-app"
version = "1.2.0"
severity = "critical"
category = "application"

[install]
type = "file-tree"
root = "/opt/demo-app"

[[health]]
type = "tcp"
port = 8080
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "RELEASE.toml"
    path.write_text(text)
    return path


def test_good_manifest_parses_with_defaults(tmp_path):
    manifest = ReleaseManifest.from_toml_file(write(tmp_path, GOOD))
    assert manifest.name == "demo-app"
    assert manifest.health[0].retries == 3
    assert manifest.rollback is False


@pytest.mark.parametrize(
    ("change", "key"),
    [
        (("severity = \"critical\"", "severity = \"urgent\""), "severity"),
        (("version = \"1.2.0\"", "version = \"one\""), "version"),
        (("root = \"/opt/demo-app\"", "root = \"opt/demo-app\""), "install.file-tree.root"),
        (("port = 8080", "port = 80800"), "health.0.tcp.port"),
        (("name = \"demo-app\"", "name = \"Demo App\""), "name"),
        (("category = \"application\"", "category = \"application\"\ncolour = \"red\""), "colour"),
    ],
)
def test_bad_manifest_error_names_the_key(tmp_path, change, key):
    path = write(tmp_path, GOOD.replace(*change))
    with pytest.raises(WireFormatError) as error:
        ReleaseManifest.from_toml_file(path)
    assert str(path) in str(error.value)
    assert key in str(error.value)


def test_manifest_that_is_not_toml_names_the_file(tmp_path):
    path = write(tmp_path, "name = [unclosed")
    with pytest.raises(WireFormatError, match="not valid TOML"):
        ReleaseManifest.from_toml_file(path)


def test_command_pair_program_must_stay_inside_payload(tmp_path):
    text = GOOD.replace(
        'type = "file-tree"\nroot = "/opt/demo-app"',
        'type = "command-pair"\ninstall = "../../bin/sh"\nrollback = "rollback.sh"',
    )
    with pytest.raises(WireFormatError, match="install.command-pair.install"):
        ReleaseManifest.from_toml_file(write(tmp_path, text))


def test_release_info_survives_tuf_canonical_json_with_fractional_seconds(tmp_path):
    """Canonical JSON has no floats; fractional seconds must still round-trip."""
    from securesystemslib.formats import encode_canonical

    from agent.wire.release import ReleaseInfo, TorrentRef

    text = GOOD.replace("port = 8080", "port = 8080\ninterval = 0.5\ntimeout = 2.5")
    manifest = ReleaseManifest.from_toml_file(write(tmp_path, text))
    info = ReleaseInfo(
        manifest=manifest, payload_name="a.tar", published_at="2026-11-25T00:00:00+00:00",
        torrent=TorrentRef(path="a.torrent", info_hash_v1="0" * 40, info_hash_v2="0" * 64),
    )
    custom = info.to_custom()
    encode_canonical(custom)  # raises on floats
    again = ReleaseInfo.from_custom(custom, "releases/demo-app/1.2.0/a.tar")
    assert again == info
    assert again.manifest.health[0].interval == 0.5


def rollback_manifest(tmp_path, lines):
    return ReleaseManifest.from_toml_file(write(tmp_path, GOOD.replace(
        'category = "application"', 'category = "application"\n' + lines)))


def test_a_rollback_release_must_name_the_versions_it_replaces(tmp_path):
    with pytest.raises(WireFormatError, match="rollback = true needs `replaces`"):
        rollback_manifest(tmp_path, "rollback = true")
    with pytest.raises(WireFormatError, match="only for rollback releases"):
        rollback_manifest(tmp_path, 'replaces = ["2.0.0"]')


@pytest.mark.parametrize(("replaces", "message"), [
    ('["two"]', "replaces.*not a version or version specifier: 'two'"),
    ('["2.0.0.x"]', "replaces.*not a valid version: '2.0.0.x'"),
    ('["1.2.0"]', "not newer than this release"),
    ('["1.0"]', "not newer than this release"),
])
def test_bad_replaces_entries_are_refused_and_named(tmp_path, replaces, message):
    with pytest.raises(WireFormatError, match=message):
        rollback_manifest(tmp_path, f"rollback = true\nreplaces = {replaces}")


def test_an_ordinary_release_refuses_to_replace_an_equal_or_newer_version():
    ordinary = ReleaseManifest(name="app", version="1.2.0", severity="low",
                               category="application",
                               install={"type": "file-tree", "root": "/opt/app"})
    assert ordinary.refuses_to_replace(None) is None
    assert ordinary.refuses_to_replace("1.1.9") is None
    assert ordinary.refuses_to_replace("1.2.0") == "version 1.2.0 is already installed"
    assert "downgrade from the installed 2.0.0 to 1.2.0 refused" in (
        ordinary.refuses_to_replace("2.0.0") or "")


def test_a_rollback_release_replaces_only_the_versions_it_names(tmp_path):
    manifest = rollback_manifest(tmp_path, 'rollback = true\nreplaces = ["2.0.0", ">=2.1,<2.2"]')
    assert manifest.refuses_to_replace("2.0.0") is None
    assert manifest.refuses_to_replace("2.1.5") is None
    assert manifest.refuses_to_replace("2.1.9rc1") is None  # a pre-release it covers
    assert manifest.refuses_to_replace("1.0.0") is None  # an upgrade, not a way back
    assert manifest.refuses_to_replace("3.0.0") == (
        "rollback release 1.2.0 may replace only 2.0.0, >=2.1,<2.2, not the installed 3.0.0")
    assert manifest.refuses_to_replace("2.0.1") is not None
