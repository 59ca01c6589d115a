"""The daemon with a real hub (in-process, real HTTP and TUF): it reads its group's
signed policy, downloads but waits for the window, does not even download a blocklisted
release, keeps its last good policy when a newer one does not validate, follows the
admin's signed group assignment, and `meisitong-agent status` shows the plan."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import trio
from click.testing import CliRunner

from agent.cli import main as agent_main
from agent.lifecycle import State
from hub.hub_dir import HubDir
from hub.policy.policies import assign_group, set_policy
from hub.repository.tuf_repository import HubRepository, ReleaseTargetEntry
from tests.fleet import start_agent, start_hub


def later_window() -> str:
    """A one-hour window three days from now: certainly closed now."""
    day = (datetime.now(UTC) + timedelta(days=3)).strftime("%a")
    return f'[[windows]]\nname = "later"\nwhen = "{day} 03:00-04:00"\n'


def write(path, text):
    path.write_text(text)
    return path


async def test_the_agent_downloads_then_waits_for_its_window_and_status_says_until_when(
        tmp_path, nursery):
    hub = await start_hub(tmp_path, nursery)
    daemon, prefix = await start_agent(hub, nursery, "desk", "127.0.0.2")
    set_policy(hub.hub_dir, "lab", write(tmp_path / "lab.toml", 'timezone = "Europe/Berlin"\n'
                                         + later_window()))
    release = hub.publish("app", "1.0.0", {"bin/app": b"new"})
    hub.rollout(release, "lab")
    await daemon.cycle()
    deployment = daemon.journal.get(release)
    assert deployment is not None and deployment.state is State.VERIFIED  # downloaded, waiting
    assert not (prefix / "opt/app/bin/app").exists()
    plan = daemon.gate.plans()[release]
    assert plan["text"].startswith("next: ") and "Europe/Berlin (window 'later')" in plan["text"]
    assert daemon.gate.seconds_until_next(60) == 0  # the policy is new: one more cycle now
    assert 2 * 86400 < daemon.gate.seconds_until_next(10 * 86400) < 4 * 86400
    status = CliRunner().invoke(agent_main, ["status", "--config",
                                             str(tmp_path / "desk/agent.toml")])
    assert status.exit_code == 0, status.output
    assert f"{release}  next: " in status.output
    assert "policy   group lab (from agent.toml): policy policies/lab.toml" in status.output
    nursery.cancel_scope.cancel()
    await trio.sleep(0)


async def test_a_blocklisted_release_is_not_downloaded_and_a_bad_new_policy_is_not_used(
        tmp_path, nursery):
    hub = await start_hub(tmp_path, nursery)
    daemon, _ = await start_agent(hub, nursery, "desk", "127.0.0.2")
    set_policy(hub.hub_dir, "lab", write(tmp_path / "lab.toml",
                                         '[blocklist]\nreleases = ["app"]\n'))
    release = hub.publish("app", "1.0.0", {"bin/app": b"new"})
    hub.rollout(release, "lab")
    await daemon.cycle()
    assert daemon.journal.get(release) is None
    assert daemon.gate.plans()[release]["text"] == (
        "blocked: blocklisted by release pattern 'app'")
    # A policy that does not validate, signed anyway (an older hub, a hand-made file):
    bad = write(tmp_path / "bad.toml", '[[windows]]\nname = "x"\nwhen = "Mon 25:00-26:00"\n')
    HubRepository(HubDir(hub.hub_dir.root)).add_release_targets(
        [ReleaseTargetEntry("policies/lab.toml", bad, serve_via_tuf=True)])
    await daemon.cycle()
    assert daemon.journal.get(release) is None  # still blocked: the last good policy holds
    note = daemon.journal.status()["policy"][0]
    assert "last good policy" in note and "REFUSED newer policy" in note
    assert "windows.0.when" in note and "hour 25 is not 00-23" in note
    nursery.cancel_scope.cancel()
    await trio.sleep(0)


async def test_the_admins_signed_assignment_moves_the_device_to_another_group(
        tmp_path, nursery):
    hub = await start_hub(tmp_path, nursery)
    daemon, prefix = await start_agent(hub, nursery, "srv", "127.0.0.2")
    set_policy(hub.hub_dir, "servers", write(tmp_path / "servers.toml", later_window()))
    assign_group(hub.hub_dir, daemon.identity.device_id, "servers", new_group=True)
    release = hub.publish("app", "1.0.0", {"bin/app": b"new"})
    hub.rollout(release, "servers")
    await daemon.cycle()
    assert daemon.gate.group == "servers"
    deployment = daemon.journal.get(release)
    assert deployment is not None and deployment.state is State.VERIFIED
    assert "window 'later'" in daemon.gate.plans()[release]["text"]
    nursery.cancel_scope.cancel()
    await trio.sleep(0)
