"""The policy format: a full policy parses; every bad key is refused by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.errors import PolicyError
from agent.policy import Policy
from agent.wire.release import Severity

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_policy() -> str:
    text = README.read_text()
    start = text.index("```toml\n# policies/office.toml")
    return text[start + len("```toml\n"): text.index("```", start + 7)]


def test_the_readme_example_policy_is_valid_and_means_what_it_says():
    policy = Policy.from_toml(readme_policy(), "README.md")
    assert policy.timezone == "Europe/Berlin"
    assert [w.name for w in policy.windows] == ["weeknights", "weekend"]
    assert policy.deadline_hours[Severity.CRITICAL] == 24
    assert policy.deferral.days == 30
    assert policy.blocklist.match("nvidia-driver", "550.1", "driver") is not None
    assert policy.disruption is not None and policy.disruption.max_concurrent == 1


def test_an_empty_policy_allows_any_time():
    policy = Policy.from_toml("", "empty.toml")
    assert policy.windows == [] and not policy.paused and policy.disruption is None


@pytest.mark.parametrize(
    ("toml", "key", "reason"),
    [
        ('[[windows]]\nname = "late"\nwhen = "Mon 25:00-26:00"\n', "windows.0.when",
         "hour 25 is not 00-23"),
        ('[[windows]]\nname = "x"\nwhen = "Mon 10:75-11:00"\n', "windows.0.when",
         "minute 75"),
        ('[[windows]]\nname = "x"\nwhen = "Funday 01:00-02:00"\n', "windows.0.when",
         "'Funday' is not a day"),
        ('[[windows]]\nname = "x"\nwhen = "Mon 01:00-01:00"\n', "windows.0.when",
         "start and end are equal"),
        ('timezone = "Mars/Olympus_Mons"\n', "timezone", "unknown time zone 'Mars/Olympus_Mons'"),
        ('[[windows]]\nname = "x"\nwhen = "Mon 01:00-02:00"\ntimezone = "Europe/Berlinn"\n',
         "windows.0.timezone", "unknown time zone"),
        ("[deferral]\ndays = -30\n", "deferral.days", "greater than or equal to 0"),
        ("[deadline_hours]\nurgent = 72\n", "deadline_hours", "unknown severity 'urgent'"),
        ("[deadline_hours]\ncritical = -1\n", "deadline_hours", "negative"),
        ("jitter_minutes = -5\n", "jitter_minutes", "greater than or equal to 0"),
        ('reboot = "whenever"\n', "reboot", "'window' or 'deadline'"),
        ("[disruption]\nmax_concurrent = 0\n", "disruption.max_concurrent", "greater than"),
        ("pasued = true\n", "pasued", "Extra inputs are not permitted"),
        ("paused = \n", "not valid TOML", ""),
    ],
)
def test_a_bad_policy_is_refused_naming_the_key_and_the_reason(toml, key, reason):
    with pytest.raises(PolicyError) as refused:
        Policy.from_toml(toml, "policies/office.toml")
    message = str(refused.value)
    assert message.startswith("policies/office.toml: ")
    assert key in message and reason in message


def test_window_names_must_be_unique():
    toml = ('[[windows]]\nname = "a"\nwhen = "Mon 01:00-02:00"\n'
            '[[windows]]\nname = "a"\nwhen = "Tue 01:00-02:00"\n')
    with pytest.raises(PolicyError, match="names must be unique"):
        Policy.from_toml(toml, "p.toml")


def test_a_policy_that_is_not_utf8_or_too_large_is_refused():
    with pytest.raises(PolicyError, match="not UTF-8"):
        Policy.from_toml(b"\xff\xfe", "p.toml")
    with pytest.raises(PolicyError, match="larger than"):
        Policy.from_toml(b"#" * 70000, "p.toml")


def test_blocklist_matches_names_versions_and_categories_as_shell_patterns():
    policy = Policy.from_toml(
        '[blocklist]\nreleases = ["nvidia-*", "demo-app@1.2.*"]\ncategories = ["driver*"]\n',
        "p.toml")
    match = policy.blocklist.match
    assert match("nvidia-driver", "1", "application") == "blocklisted by release pattern 'nvidia-*'"
    assert match("demo-app", "1.2.7", "application") is not None
    assert match("demo-app", "1.3.0", "application") is None
    assert match("wifi", "2", "driver-wireless") == "blocklisted by category pattern 'driver*'"
