"""The admin CLI: one command per intent, clear one-line errors, nothing half-applied."""

import json
import stat

import pytest
from click.testing import CliRunner

from hub.cli.main import main
from tests.fleet import tar_bytes

RELEASE = """name = "tool"
version = "2.0.0"
severity = "moderate"
category = "application"
[install]
type = "file-tree"
root = "/opt/tool"
"""


@pytest.fixture
def hub_dir(initialized_hub_dir):
    return initialized_hub_dir


def run(*args, env=None):
    return CliRunner().invoke(main, list(args), env=env)


def test_init_keeps_offline_keys_apart_and_private(hub_dir):
    offline = sorted(p.name for p in (hub_dir / "offline-keys").iterdir())
    online = sorted(p.name for p in (hub_dir / "online-keys").iterdir())
    assert offline == ["offline.toml", "root.pem", "targets.pem"]
    assert online == ["rollout.pem", "snapshot.pem", "timestamp.pem"]
    for key in [*(hub_dir / "offline-keys").iterdir(), *(hub_dir / "online-keys").iterdir(),
                hub_dir / "enrollment-token", hub_dir / "hub.db"]:
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
    assert (hub_dir / "enrollment-token").read_text().startswith("mst1.")


def test_init_refuses_a_directory_in_use(hub_dir):
    result = run("init", "--dir", str(hub_dir))
    assert result.exit_code == 1
    assert "not empty" in result.output


def test_dir_comes_from_environment_when_not_given(hub_dir):
    result = run("status", "--json", env={"MEISITONG_HUB_DIR": str(hub_dir)})
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["releases"] == [] and body["devices"] == []
    assert body["targets"]["version"] == 1 and body["targets"]["warning"] == ""


def test_publish_then_rollout_shows_in_status_and_audit(hub_dir, tmp_path):
    (tmp_path / "RELEASE.toml").write_text(RELEASE)
    (tmp_path / "tool.tar").write_bytes(tar_bytes({"bin/tool": b"x"}))
    published = run("publish", "--dir", str(hub_dir), str(tmp_path / "RELEASE.toml"),
                    str(tmp_path / "tool.tar"), "--json")
    assert published.exit_code == 0, published.output
    assert json.loads(published.output)["target"] == "releases/tool/2.0.0/tool.tar"
    assert run("rollout", "start", "tool@2.0.0", "--group", "lab", "--new-group", "--dir",
               str(hub_dir)).exit_code == 0
    status = json.loads(run("status", "--dir", str(hub_dir), "--json").output)
    [release] = status["releases"]
    assert release["rollouts"][0]["group"] == "lab"
    actions = [row["action"] for row in
               json.loads(run("audit", "--dir", str(hub_dir), "--json").output)]
    assert actions[-2:] == ["release.publish", "rollout.start"]


def test_publishing_the_same_version_twice_is_refused(hub_dir, tmp_path):
    (tmp_path / "RELEASE.toml").write_text(RELEASE)
    (tmp_path / "tool.tar").write_bytes(tar_bytes({"bin/tool": b"x"}))
    args = ["publish", "--dir", str(hub_dir), str(tmp_path / "RELEASE.toml"),
            str(tmp_path / "tool.tar")]
    assert run(*args).exit_code == 0
    again = run(*args)
    assert again.exit_code == 1 and "already published" in again.output


def test_malformed_release_file_names_the_key_and_signs_nothing(hub_dir, tmp_path):
    (tmp_path / "RELEASE.toml").write_text(RELEASE.replace('"moderate"', '"whenever"'))
    (tmp_path / "tool.tar").write_bytes(tar_bytes({"bin/tool": b"x"}))
    timestamp = (hub_dir / "repository/metadata/timestamp.json").read_bytes()
    result = run("publish", "--dir", str(hub_dir), str(tmp_path / "RELEASE.toml"),
                 str(tmp_path / "tool.tar"))
    assert result.exit_code == 1
    assert "severity" in result.output and "RELEASE.toml" in result.output
    assert (hub_dir / "repository/metadata/timestamp.json").read_bytes() == timestamp
    assert not any((hub_dir / "payloads").rglob("*.tar"))


def test_a_rollback_release_that_names_no_version_it_replaces_is_not_signed(hub_dir, tmp_path):
    (tmp_path / "RELEASE.toml").write_text(RELEASE.replace(
        'category = "application"', 'category = "application"\nrollback = true'))
    (tmp_path / "tool.tar").write_bytes(tar_bytes({"bin/tool": b"x"}))
    timestamp = (hub_dir / "repository/metadata/timestamp.json").read_bytes()
    result = run("publish", "--dir", str(hub_dir), str(tmp_path / "RELEASE.toml"),
                 str(tmp_path / "tool.tar"))
    assert result.exit_code == 1
    assert "RELEASE.toml" in result.output and "rollback = true needs `replaces`" in result.output
    assert (hub_dir / "repository/metadata/timestamp.json").read_bytes() == timestamp


def test_rollout_of_unknown_release_is_refused_with_what_exists(hub_dir):
    result = run("rollout", "start", "nothing", "--group", "lab", "--dir", str(hub_dir))
    assert result.exit_code == 1
    assert "no published release 'nothing'" in result.output


def test_rollout_to_invalid_group_name_is_refused(hub_dir):
    result = run("rollout", "start", "x", "--group", "Bad Group", "--dir", str(hub_dir))
    assert result.exit_code == 1 and "not a valid name" in result.output


def test_commands_on_a_missing_hub_say_how_to_create_it(tmp_path):
    result = run("status", "--dir", str(tmp_path / "nope"))
    assert result.exit_code == 1 and "meisitong-hub init" in result.output


def test_both_commands_say_their_version():
    from importlib.metadata import version

    from agent.cli import main as agent_main

    for command, name in ((main, "meisitong-hub"), (agent_main, "meisitong-agent")):
        shown = CliRunner().invoke(command, ["--version"])
        assert shown.exit_code == 0
        assert shown.output.strip() == f"{name}, version {version('meisitong')}"


def test_publish_names_the_torrents_urls_and_warns_when_public_url_is_unset(hub_dir, tmp_path):
    (tmp_path / "RELEASE.toml").write_text(RELEASE)
    (tmp_path / "tool.tar").write_bytes(tar_bytes({"bin/tool": b"x"}))
    result = run("publish", "--dir", str(hub_dir), str(tmp_path / "RELEASE.toml"),
                 str(tmp_path / "tool.tar"))
    assert result.exit_code == 0, result.output
    assert "web seed http://127.0.0.1:8080/payloads/releases/tool/2.0.0/tool.tar" in result.output
    assert "sets no [server] public_url" in result.output

    config = hub_dir / "hub.toml"
    config.write_text(config.read_text().replace('public_url = ""',
                                                 'public_url = "https://hub.example"'))
    (tmp_path / "RELEASE.toml").write_text(RELEASE.replace("2.0.0", "2.0.1"))
    published = run("publish", "--dir", str(hub_dir), str(tmp_path / "RELEASE.toml"),
                    str(tmp_path / "tool.tar"), "--json")
    assert published.exit_code == 0, published.output
    answer = json.loads(published.output)
    assert answer["tracker"] == "https://hub.example/announce"
    assert answer["public_url_set"] is True
