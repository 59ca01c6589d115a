"""kill -9 at every journaled transition, once and twice in a row: the endpoint ends fully
on the new version with its checks passing or byte-identical to before, the hub holds
exactly one result, and nothing is left in the agent's state directory.

Real processes: each agent is `meisitong-agent run` in its own process, killed by
SIGKILL from the crash-point test hook (agent/crash_points.py) right after the named
transition is durably journaled, then started again as a service manager would. The
hub (HTTP, TUF repository, seeder, tracker) runs in the test process on 127.0.0.1.

Each case (release x transition x kill pattern) is a test id of its own; the cases run
together once per module (`crash_runs`), eight agents at a time against one hub, as
one expensive setup, and each test reports its own case.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio

from agent.health_checks import run_health_checks
from agent.install_prefix import InstallPrefix
from agent.wire.release import ReleaseManifest
from hub.rollouts.changes import start_rollout
from tests.agent._tree_state import tree_state
from tests.e2e._crash_harness import (
    Agent,
    command_check,
    file_hash_check,
    publish,
    start_hub_published,
    supervise,
    write_tar,
)

pytestmark = pytest.mark.slow

GOOD_PATH = ["pending", "scheduled", "downloading", "verified", "snapshotting",
             "installing", "checking", "committed"]
REVERT_PATH = ["reverting", "reverted"]
PARALLEL = 8

SELFTEST_OK = b"#!/bin/sh\ntest \"$(cat \"$MEISITONG_ROOT/opt/ft/VERSION\")\" = 2.0.0\n"
SELFTEST_BAD = b"#!/bin/sh\necho 'new version cannot start' >&2\nexit 1\n"
CP_INSTALL = b"""#!/bin/sh
set -e
d="$MEISITONG_ROOT/opt/cp"
mkdir -p "$d/bin"
cp "$MEISITONG_PAYLOAD_DIR/files/VERSION" "$d/VERSION"
cp "$MEISITONG_PAYLOAD_DIR/files/app" "$d/bin/app"
rm -f "$d/obsolete"
"""
CP_ROLLBACK = b"#!/bin/sh\n# the snapshot restore puts the files back\nexit 0\n"


def old_version(prefix):
    """What every endpoint holds before the release (version 1.0.0 of both apps)."""
    for app in ("ft", "cp"):
        root = prefix / "opt" / app
        (root / "bin").mkdir(parents=True)
        (root / "VERSION").write_bytes(b"1.0.0")
        (root / "bin/app").write_bytes(b"app 1.0")
        (root / "bin/app").chmod(0o755)
        (root / "obsolete").write_bytes(b"only in 1.0")
    (prefix / "opt/ft/bin/selftest").write_bytes(b"#!/bin/sh\nexit 0\n")
    (prefix / "opt/ft/bin/selftest").chmod(0o755)
    (prefix / "etc").mkdir()
    (prefix / "etc/app.conf").write_bytes(b"port = 8080\n")


@dataclass(frozen=True)
class Release:
    name: str
    installer: str
    healthy: bool
    target: str = ""


def publish_releases(hub, workdir):
    ft_files = {"VERSION": (b"2.0.0", 0o644), "bin/app": (b"app 2.0", 0o755)}
    releases = {}
    for healthy in (True, False):
        suffix = "ok" if healthy else "bad"
        selftest = SELFTEST_OK if healthy else SELFTEST_BAD
        payload = write_tar(workdir / f"ft-{suffix}.tar",
                            {**ft_files, "bin/selftest": (selftest, 0o755)})
        target = publish(hub, f"ft-{suffix}", "2.0.0", payload,
                         '[install]\ntype = "file-tree"\nroot = "/opt/ft"\n'
                         + file_hash_check("/opt/ft/VERSION", b"2.0.0")
                         + command_check(["{root}/opt/ft/bin/selftest"]))
        releases[f"ft-{suffix}"] = Release(f"ft-{suffix}", "file-tree", healthy, target)
        payload = write_tar(workdir / f"cp-{suffix}.tar", {
            "install.sh": (CP_INSTALL, 0o755), "rollback.sh": (CP_ROLLBACK, 0o755),
            "files/VERSION": (b"2.0.0", 0o644), "files/app": (b"app 2.0", 0o755),
        })
        target = publish(hub, f"cp-{suffix}", "2.0.0", payload,
                         '[install]\ntype = "command-pair"\ninstall = "install.sh"\n'
                         'rollback = "rollback.sh"\npaths = ["/opt/cp"]\ntimeout = 30\n'
                         + file_hash_check("/opt/cp/VERSION", b"2.0.0" if healthy else b"9"))
        releases[f"cp-{suffix}"] = Release(f"cp-{suffix}", "command-pair", healthy, target)
    return releases


KILL_PATTERNS = {
    "once": lambda point: [point],
    "twice": lambda point: [point, point],
    "then-next": lambda point: [point, "*"],
}


def crash_cases():
    """(release name, transition, kill pattern): every transition of a file-tree and of a
    command-pair install (the revert path's own two with the unhealthy release): killed
    once; twice in a row at the same point (the restarted agent is killed again when it
    reaches that point, by a new transition or by resuming there); and killed again at
    the first transition the restarted agent journals, wherever that is."""
    cases = []
    for installer in ("ft", "cp"):
        points = [(f"{installer}-ok", p) for p in GOOD_PATH]
        points += [(f"{installer}-bad", p) for p in REVERT_PATH]
        for release, point in points:
            cases.extend((release, point, pattern) for pattern in KILL_PATTERNS)
    return cases


CASES = crash_cases()


def expected_outcome(release, plan):
    if not release.healthy:
        return "reverted"
    if release.installer == "command-pair" and plan[0] == "installing":
        return "reverted"  # not idempotent: an interrupted install is reverted
    return "installed"


def publish_and_roll_out(hub, workdir):
    releases = publish_releases(hub, workdir)
    for release in releases.values():
        start_rollout(hub.hub_dir, release.target, release.name, new_group=True)
    return releases


async def run_cases(workdir: Path, cases: list[tuple[str, str, str]]
                    ) -> dict[tuple[str, str, str], str | Exception]:
    """Each case's report line, or what made it fail."""
    outcomes: dict[tuple[str, str, str], str | Exception] = {}
    limiter = trio.CapacityLimiter(PARALLEL)
    async with trio.open_nursery() as nursery:
        hub, releases = await start_hub_published(
            workdir, nursery, lambda hub: publish_and_roll_out(hub, workdir))

        async def run_case(case):
            release_name, point, pattern = case
            release, plan = releases[release_name], KILL_PATTERNS[pattern](point)
            number = CASES.index(case)
            async with limiter:
                agent = Agent(hub, f"c{number:02d}", release.name, workdir / f"c{number:02d}")
                old_version(agent.prefix)
                before = tree_state(agent.prefix)
                try:
                    await agent.enroll()
                    outcomes[case] = await check_case(agent, release, plan, before)
                except Exception as exc:  # kept for the case's own test to raise
                    outcomes[case] = exc

        async with trio.open_nursery() as cases_nursery:
            for case in cases:
                cases_nursery.start_soon(run_case, case)
        nursery.cancel_scope.cancel()  # the hub
    return outcomes


@pytest.fixture(scope="module")
def crash_runs(request, tmp_path_factory):
    """The cases this session selected, run at once (trio.run of their own: pytest-trio
    fixtures are per test), and a summary printed for `-s`."""
    selected = {item.callspec.params["case"] for item in request.session.items
                if item.module is request.module and hasattr(item, "callspec")}
    cases = [case for case in CASES if case in selected]
    outcomes = trio.run(run_cases, tmp_path_factory.mktemp("crash"), cases)
    report = sorted(line for line in outcomes.values() if isinstance(line, str))
    kills = sum(line.count("killed") for line in report)
    print(f"\ncrash points tried: {len(cases)} runs (each transition: once, twice at the "
          f"same point, then at the next step); {kills} SIGKILLs")
    for line in report:
        print("  " + line)
    return outcomes


@pytest.mark.parametrize("case", CASES, ids=["-".join(case) for case in CASES])
def test_sigkill_at_a_transition_recovers_to_new_or_identical_tree_with_one_result(
    crash_runs, case
):
    outcome = crash_runs[case]
    if isinstance(outcome, Exception):
        raise outcome


async def check_case(agent, release, plan, before):
    deaths = []
    codes = await supervise(agent, plan, timeout=120)
    assert codes[0] == -signal.SIGKILL, f"the crash point {plan[0]} was never reached: {codes}"
    deaths = [code for code in codes if code == -signal.SIGKILL]
    outcome = expected_outcome(release, plan)
    results = agent.hub_results()
    assert len(results) == 1, f"hub holds {len(results)} results for the device"
    assert results[0]["outcome"] == outcome, results[0]
    if outcome == "reverted":
        assert tree_state(agent.prefix) == before, "not byte-identical to before"
    else:
        await assert_new_version_healthy(agent, release)
    assert agent.leftovers() == []
    second = ""
    if len(plan) > 1:
        second = (f", killed again at {second_kill_point(agent)}" if len(deaths) > 1
                  else f", restart never reached {plan[1]!r} (no second kill)")
    return f"{release.name:<7} killed at {plan[0]:<12}{second} -> {outcome}"


def second_kill_point(agent):
    """The transition the restarted agent journaled just before it was killed again."""
    log = (agent.home / "agent.log").read_text()
    marker = "SIGKILL after journaling "
    points = [line.split(marker, 1)[1].strip() for line in log.splitlines() if marker in line]
    return points[1] if len(points) > 1 else "?"


async def assert_new_version_healthy(agent, release):
    app = "ft" if release.installer == "file-tree" else "cp"
    root = agent.prefix / "opt" / app
    assert (root / "VERSION").read_bytes() == b"2.0.0"
    assert (root / "bin/app").read_bytes() == b"app 2.0"
    [row] = agent.journal_rows("SELECT detail FROM deployments")
    import json

    from tuf.api.metadata import TargetFile

    from agent.wire.release import ReleaseInfo
    target = TargetFile.from_dict(dict(json.loads(row[0])["target"]), release.target)
    manifest: ReleaseManifest = ReleaseInfo.from_custom(target.custom, release.target).manifest
    report = await run_health_checks(manifest.health, InstallPrefix(agent.prefix))
    assert report.passed, report.summary()
