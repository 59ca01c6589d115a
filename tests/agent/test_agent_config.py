"""agent.toml is refused as a whole, with every bad key named; defaults are complete."""

from pathlib import Path

import pytest

from agent.config import AgentConfig
from agent.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def test_shipped_default_config_is_valid():
    config = AgentConfig.load(REPO / "config" / "agent.toml")
    assert config.agent.group == "default"
    assert config.p2p.upload_limit == 0


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[p2p]\nlisten = "nowhere"\n', "p2p.listen"),
        ("[p2p]\nupload_limit = -5\n", "p2p.upload_limit"),
        ('[agent]\ngroup = "Not A Name"\n', "agent.group"),
        ('[agent]\nstate_dir = "relative/dir"\n', "agent.state_dir"),
        ("[agent]\npoll_intervall = 5\n", "agent.poll_intervall"),
        ('[hub]\nurl = "ftp://hub"\n', "hub.url"),
    ],
)
def test_bad_config_error_names_file_and_key(tmp_path, text, key):
    path = tmp_path / "agent.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        AgentConfig.load(path)
    assert str(path) in str(error.value) and key in str(error.value)


def test_missing_config_says_how_to_fix(tmp_path):
    with pytest.raises(ConfigError, match="--config"):
        AgentConfig.load(tmp_path / "absent.toml")


def test_invalid_toml_is_refused(tmp_path):
    path = tmp_path / "agent.toml"
    path.write_text("[agent\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        AgentConfig.load(path)
