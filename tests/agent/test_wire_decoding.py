"""Outside text is decoded within bounds: deep nesting and huge numbers are the declared
format error of each parser (WireFormatError, ConfigError, PolicyError, GossipError),
never Python's RecursionError or its int-conversion ValueError, which used to end the
daemon (issue 12, attack 3)."""

import json

import pytest

from agent.config import AgentConfig
from agent.errors import ConfigError, PolicyError, WireFormatError
from agent.policy.model import Policy
from agent.wire.decoding import MAX_DEPTH, decode_json, decode_toml
from agent.wire.release import ReleaseInfo, ReleaseManifest
from agent.wire.result import SignedResult
from agent.wire.rollout import GroupRollouts
from hub.config import HubConfig
from hub.errors import HubConfigError

HOSTILE_JSON = {
    "deep array": b"[" * 100_000 + b"]" * 100_000,
    "deep object": b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
    "just past the depth bound": b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1),
    "5000-digit integer": b'{"version": ' + b"9" * 5000 + b"}",
    "negative 5000-digit integer": b"[-" + b"9" * 5000 + b"]",
    "long float": b"[1." + b"1" * 5000 + b"]",
    "overflowing float": b"[1e999]",
    "NaN": b"[NaN]",
    "Infinity": b"[-Infinity]",
    "not UTF-8": b"\xff\xfe[",
}
HOSTILE_TOML = {
    "deep array": "a = " + "[" * 100_000 + "]" * 100_000,
    "deep inline table": "a = " + "{b = " * 3000 + "1" + "}" * 3000,
    "5000-digit integer": "a = " + "9" * 5000,
    "45-digit integer": "a = " + "9" * 45,
    "long float": "a = 1." + "1" * 5000,
    "inf": "a = inf",
}


@pytest.mark.parametrize("data", HOSTILE_JSON.values(), ids=HOSTILE_JSON.keys())
def test_hostile_json_is_a_wire_format_error_naming_the_source(data):
    with pytest.raises(WireFormatError, match="^peer frame: "):
        decode_json(data, "peer frame")


@pytest.mark.parametrize("data", HOSTILE_JSON.values(), ids=HOSTILE_JSON.keys())
def test_wire_models_refuse_hostile_json_with_their_declared_error(data):
    for parse in (SignedResult.from_bytes, GroupRollouts.from_bytes):
        with pytest.raises(WireFormatError):
            parse(data, "test body")


def test_json_within_bounds_decodes_as_before():
    nested = b"[" * MAX_DEPTH + b"]" * MAX_DEPTH
    assert decode_json(nested, "x") is not None
    assert decode_json(b'{"n": 18446744073709551615, "f": 0.5, "s": "\\u00e9"}', "x") == {
        "n": 2**64 - 1, "f": 0.5, "s": "\u00e9"}


@pytest.mark.parametrize("text", HOSTILE_TOML.values(), ids=HOSTILE_TOML.keys())
def test_hostile_toml_is_the_declared_error_of_every_toml_loader(text, tmp_path):
    with pytest.raises(WireFormatError, match="^x.toml: "):
        decode_toml(text, "x.toml")
    path = tmp_path / "file.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=str(path)):
        AgentConfig.load(path)
    with pytest.raises(WireFormatError, match=str(path)):
        ReleaseManifest.from_toml_file(path)
    with pytest.raises(PolicyError, match="policies/lab.toml"):
        Policy.from_toml(text.encode(), "policies/lab.toml")
    with pytest.raises(HubConfigError, match=str(path)):
        HubConfig.load(path)


@pytest.mark.parametrize("custom", [None, [], ["meisitong"], "meisitong", {"meisitong": 5}])
def test_a_signed_target_without_release_fields_is_a_wire_format_error(custom):
    with pytest.raises(WireFormatError, match="releases/app/1/app.tar"):
        ReleaseInfo.from_custom(custom, "releases/app/1/app.tar")


def test_a_config_file_that_is_not_utf8_is_a_config_error(tmp_path):
    path = tmp_path / "file.toml"
    path.write_bytes(b'[agent]\nname = "\xed\xa0\x80"\n')  # found by tests/agent/test_wire_fuzz.py
    with pytest.raises(ConfigError, match="not UTF-8"):
        AgentConfig.load(path)
    with pytest.raises(HubConfigError, match="not UTF-8"):
        HubConfig.load(path)


@pytest.mark.parametrize("when", ["soon", "2026-12-01T10:00:00", "2026-13-01T10:00:00+00:00"])
def test_a_lease_answer_with_a_time_the_agent_cannot_compute_with_is_malformed(when):
    from agent.wire.lease import LeaseAnswer
    from agent.wire.validation import parse_json_model

    for field in ("expires_at", "retry_at"):
        body = json.dumps({"granted": True, "held": 1, field: when}).encode()
        with pytest.raises(WireFormatError, match=field):
            parse_json_model(LeaseAnswer, body, "lease answer")
