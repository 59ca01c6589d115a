"""What the agent reads for a release's requirements (agent/readiness_facts.py): only
what the requirements ask about, dpkg-query for the named packages only (its exit 1 for
a name not installed is an answer, not a failure), the same figures the inventory
probe reports (RAM as psutil reads it, free space as statvfs gives an unprivileged
writer)."""

from __future__ import annotations

import os
from pathlib import Path

import psutil
import pytest

from agent.errors import ReadinessError
from agent.readiness_facts import device_facts, installed_versions, memory_bytes
from agent.wire.requirements import Requirements


def dpkg_stand_in(tmp_path: Path, body: str) -> str:
    """A dpkg-query that records its arguments and answers with `body`."""
    script = tmp_path / "dpkg-query"
    script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > "{tmp_path}/argv"\n{body}\n')
    script.chmod(0o755)
    return str(script)


def test_only_the_named_packages_are_asked_for_and_a_missing_name_is_not_an_error(tmp_path):
    query = dpkg_stand_in(tmp_path, "printf 'ii \\tlibfoo\\t1.0-1\\tamd64\\tfoo\\t1.0-1\\n"
                                    "ii \\tlibfoo\\t1.0-1\\ti386\\tfoo\\t1.0-1\\n"
                                    "rc \\tgone\\t2.0\\tamd64\\tgone\\t2.0\\n'\n"
                                    "echo 'dpkg-query: no packages found matching nope' >&2\n"
                                    "exit 1")
    assert installed_versions(query, ["libfoo", "gone", "nope"]) == {
        "libfoo": ("1.0-1", "1.0-1")}  # multi-arch twice; config files only: not installed
    argv = (tmp_path / "argv").read_text().splitlines()
    assert argv[0] == "-W" and argv[-4:] == ["--", "libfoo", "gone", "nope"]


def test_dpkg_query_failing_otherwise_is_a_readiness_error(tmp_path):
    query = dpkg_stand_in(tmp_path, "echo 'database locked' >&2; exit 2")
    with pytest.raises(ReadinessError, match="exit 2.*database locked"):
        installed_versions(query, ["libfoo"])


def test_no_dpkg_means_no_debian_packages(tmp_path):
    assert installed_versions(str(tmp_path / "absent"), ["libfoo"]) == {}


def test_facts_not_asked_for_are_not_read(tmp_path):
    query = dpkg_stand_in(tmp_path, "exit 2")  # would fail if it were run
    facts = device_facts(Requirements(kernel=">= 1"), tmp_path, query, tmp_path / "none")
    assert facts.kernel == os.uname().release and facts.memory_bytes == 0
    assert facts.os_id == "" and facts.packages == {} and not (tmp_path / "argv").exists()


def test_ram_disk_and_os_as_the_inventory_probe_measures_them(tmp_path):
    os_release = tmp_path / "os-release"
    os_release.write_text('ID=debian\nVERSION_ID="12"\n')
    requires = Requirements.model_validate(
        {"os": {"id": "debian"}, "min_ram": 1, "min_free_disk": 1})
    facts = device_facts(requires, tmp_path / "not" / "yet", "dpkg-query", os_release)
    assert (facts.os_id, facts.os_version_id) == ("debian", "12")
    assert facts.memory_bytes == memory_bytes() == psutil.virtual_memory().total
    assert abs(facts.disk_free_bytes - psutil.disk_usage(str(tmp_path)).free) < 64 << 20
