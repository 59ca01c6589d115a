"""A release waiting days for its reboot window does not hold the daemon.

The daemon with a real hub (in-process, real HTTP and TUF) and real time: the reboot
window is days away, so `cycle()` must return while the release waits in `rebooting`
(it used to wait there in place, blocking the main loop: no refresh, no pause obeyed, no
critical release). The policy's window math on a mock clock is pinned in
test_policy_gate; real time is used here because the hub's HTTP server cannot run on a
mock clock. The reboot adapter is replaced by one that records a request (the test must
never reboot this machine) and fails the test if called.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import trio

from agent.lifecycle import State
from hub.policy.policies import set_policy
from tests.fleet import start_agent, start_hub


class NoReboot:
    """Reboot adapter that must not be called here: the window is days away."""

    def __init__(self, boot_id: str) -> None:
        self._boot_id = boot_id
        self.requested: list[str] = []

    def boot_id(self) -> str:
        return self._boot_id

    async def reboot(self, release: str) -> None:
        self.requested.append(release)
        raise AssertionError(f"rebooted for {release} outside its window")


def window_in_three_days() -> str:
    day = (datetime.now(UTC) + timedelta(days=3)).strftime("%a")
    return f'[[windows]]\nname = "later"\nwhen = "{day} 03:00-04:00"\n'


async def test_while_one_release_waits_for_its_reboot_window_a_critical_one_installs_and_a_pause_is_obeyed(  # noqa: E501
        tmp_path, nursery):
    hub = await start_hub(tmp_path, nursery)
    daemon, prefix = await start_agent(hub, nursery, "srv", "127.0.0.2")
    daemon.ctx.reboot = NoReboot(daemon.ctx.reboot.boot_id())
    policy = tmp_path / "lab.toml"
    # Critical releases install at once (deadline 0 h passed); reboots wait for the window.
    policy.write_text('reboot = "window"\n[deadline_hours]\ncritical = 0\n'
                      + window_in_three_days())
    set_policy(hub.hub_dir, "lab", policy)

    kernel = hub.publish("kernel", "6.1.0", {"vmlinuz": b"new kernel"}, root="/boot",
                         severity="critical", top_level="reboot = true\n")
    hub.rollout(kernel, "lab")
    with trio.fail_after(60):  # it waited in place for days before
        await daemon.cycle()
    assert daemon.journal.get(kernel).state is State.REBOOTING
    assert "reboot waits for window 'later'" in daemon.gate.plans()[kernel]["text"]

    fix = hub.publish("openssl", "3.0.9", {"lib/libssl.so": b"fixed"}, root="/usr",
                      severity="critical")
    hub.rollout(fix, "lab")
    with trio.fail_after(60):
        await daemon.cycle()
    assert daemon.journal.get(fix).state is State.COMMITTED
    assert (prefix / "usr/lib/libssl.so").read_bytes() == b"fixed"
    assert daemon.journal.get(kernel).state is State.REBOOTING  # still waiting, in place

    policy.write_text('paused = true\nreboot = "window"\n[deadline_hours]\ncritical = 0\n'
                      + window_in_three_days())
    set_policy(hub.hub_dir, "lab", policy)
    app = hub.publish("app", "2.0.0", {"bin/app": b"new"}, severity="critical")
    hub.rollout(app, "lab")
    with trio.fail_after(60):
        await daemon.cycle()
    assert daemon.journal.get(app) is None  # the pause signed meanwhile is obeyed
    assert "paused" in daemon.gate.plans()[app]["text"]
    assert daemon.ctx.reboot.requested == []
    # The daemon sleeps until the window, not for days inside a deployment (once more
    # at once first: the policy has just changed).
    assert daemon.gate.seconds_until_next(60) == 0
    assert 2 * 86400 < daemon.gate.seconds_until_next(10 * 86400) < 4 * 86400
    nursery.cancel_scope.cancel()
    await trio.sleep(0)
