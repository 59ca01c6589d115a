"""The controller's compatibility hold on a real hub directory: a rollout started with
`--hold-flagged` holds the release for the devices of a flagged model and advances for
the others; the hold is audited with its figures and signed into the group's document,
read back through the agent's MetadataClient. Without the opt-in nothing is held."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from agent.rollout_selection import held_releases, in_current_stage, is_held
from agent.wire.result import Outcome
from hub.rollouts.changes import apply_rollout_rules
from tests.compat_fleet import TARGET, enroll, make_hub, report, run, send_inventory
from tests.hub.test_rollout_cli import signed_document

FPRINTD = ("fprintd", "1.94.2-2", "amd64", "fprintd", "1.94.2-2")


def office(tmp_path):
    """5 ThinkPads and 40 OptiPlexes in group office; 4 ThinkPads and 20 OptiPlexes are
    pilots."""
    hub = make_hub(tmp_path)
    laptops = [enroll(hub, f"laptop-{i}", "office") for i in range(5)]
    desks = [enroll(hub, f"desk-{i}", "office") for i in range(40)]
    for laptop in laptops:
        send_inventory(hub, laptop, "ThinkPad X13 Gen 2", extra=[FPRINTD])
    for desk in desks:
        send_inventory(hub, desk, "OptiPlex 7090")
    return hub, laptops, desks


def start(hub, laptops, desks, *extra):
    pilots = ",".join(d.name for d in [*laptops[:4], *desks[:20]])
    result = run(hub, "rollout", "start", "tool", "--group", "office", "--stages", "0,100",
                 "--pilot-devices", pilots, "--soak", "1h", *extra)
    assert result.exit_code == 0, result.output


def pilots_report(hub, laptops, desks):
    for desk in desks[:20]:
        report(hub, desk, Outcome.INSTALLED)
    for laptop in laptops[:3]:
        report(hub, laptop, Outcome.REVERTED)
    report(hub, laptops[3], Outcome.INSTALLED)


def audit_entries(hub, action):
    result = run(hub, "audit", "--json")
    assert result.exit_code == 0, result.output
    return [row for row in json.loads(result.output) if row["action"] == action]


def test_a_flagged_model_is_held_while_the_rollout_advances_for_the_others(tmp_path):
    hub, laptops, desks = office(tmp_path)
    start(hub, laptops, desks, "--hold-flagged")
    pilots_report(hub, laptops, desks)
    now = datetime.now(UTC)

    [hold] = apply_rollout_rules(hub, now).changes
    assert hold.verdict == "hold" and "model=ThinkPad X13 Gen 2" in hold.reason
    # The three that failed and the one that has not tried yet; not the one it installed on.
    held = {laptops[i].device_id for i in (0, 1, 2, 4)}
    [entry] = signed_document(hub, tmp_path, "office").rollouts
    assert set(entry.held_devices) == held and entry.state == "active"

    [audited] = audit_entries(hub, "rollout.hold")
    assert audited["actor"] == "controller"
    figures = audited["detail"]["evidence"]
    assert (figures["failures"], figures["devices_reported"], figures["rest_failures"],
            figures["rest_devices"]) == (3, 4, 0, 20)
    assert figures["p_value"] == pytest.approx(4 / 2024)  # C(4,3)/C(24,3)
    assert figures["adjusted_p"] <= figures["alpha"] == 0.05
    assert set(figures["held_devices"]) == held
    assert "Fisher" in figures["method"] and "Holm" in figures["method"]

    # The held ThinkPads' failures no longer count: the 21 others passed the stage gate.
    [advance] = apply_rollout_rules(hub, now + timedelta(hours=1)).changes
    assert advance.verdict == "advance" and advance.stage_percent == 100
    [entry] = signed_document(hub, tmp_path, "office").rollouts
    assert entry.stage_percent == 100 and set(entry.held_devices) == held
    assert all(in_current_stage(entry, d.device_id, "office") for d in desks)
    assert in_current_stage(entry, laptops[3].device_id, "office")
    for device_id in held:
        assert is_held(entry, device_id) and not in_current_stage(entry, device_id, "office")

    [status] = json.loads(run(hub, "rollout", "status", "--json").output)
    assert set(status["held_devices"]) == held
    assert "held for 4 device(s)" in run(hub, "rollout", "status").output

    # A second pass with nothing new holds nothing more and audits nothing more.
    assert apply_rollout_rules(hub, now + timedelta(hours=1, minutes=1)).changes == []
    assert len(audit_entries(hub, "rollout.hold")) == 1

    # A ThinkPad enrolling later is held at the next check (due once a minute without
    # new failures), before it would install.
    late = enroll(hub, "laptop-late", "office")
    send_inventory(hub, late, "ThinkPad X13 Gen 2", extra=[FPRINTD])
    assert apply_rollout_rules(hub, now + timedelta(hours=1, minutes=1, seconds=30)) \
        .changes == []  # not due yet
    [late_hold] = apply_rollout_rules(hub, now + timedelta(hours=1, minutes=2)).changes
    assert late_hold.verdict == "hold" and "held for 1 device(s)" in late_hold.reason
    [entry] = signed_document(hub, tmp_path, "office").rollouts
    assert is_held(entry, late.device_id) and entry.stage_percent == 100


def test_without_the_opt_in_nothing_is_held_and_the_failures_halt_everyone(tmp_path):
    hub, laptops, desks = office(tmp_path)
    start(hub, laptops, desks)
    pilots_report(hub, laptops, desks)
    # 3 failures after 20 successes: the sequential test halts the whole rollout.
    [halt] = apply_rollout_rules(hub, datetime.now(UTC)).changes
    assert halt.verdict == "halt" and "sequential test: 3 failures" in halt.reason
    [entry] = signed_document(hub, tmp_path, "office").rollouts
    assert entry.state == "halted" and entry.held_devices == []
    assert held_releases(signed_document(hub, tmp_path, "office"), desks[30].device_id,
                         [TARGET])[TARGET].startswith("rollout is halted")
    assert audit_entries(hub, "rollout.hold") == []


def test_an_admin_unhold_is_audited_and_the_controller_does_not_hold_again(tmp_path):
    hub, laptops, desks = office(tmp_path)
    start(hub, laptops, desks, "--hold-flagged")
    pilots_report(hub, laptops, desks)
    now = datetime.now(UTC)
    [hold] = apply_rollout_rules(hub, now).changes
    assert hold.verdict == "hold"
    refused = run(hub, "rollout", "unhold", "tool", "--group", "office", "--devices",
                  "desk-1")
    assert refused.exit_code == 1 and "'desk-1' is not held" in refused.output
    result = run(hub, "rollout", "unhold", "tool", "--group", "office", "--devices",
                 "laptop-4", "--reason", "BIOS updated", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["released"] == [laptops[4].device_id]
    [entry] = signed_document(hub, tmp_path, "office").rollouts
    assert not is_held(entry, laptops[4].device_id) and is_held(entry, laptops[0].device_id)
    [audited] = audit_entries(hub, "rollout.unhold")
    assert audited["actor"].startswith("admin") and audited["detail"]["reason"] == \
        "BIOS updated" and audited["detail"]["devices"] == [laptops[4].device_id]
    # A new failure makes the check due: the released device is not held again.
    report(hub, laptops[0], Outcome.FAILED)
    assert [c.verdict for c in apply_rollout_rules(hub, now + timedelta(seconds=5)).changes] \
        == []
    [entry] = signed_document(hub, tmp_path, "office").rollouts
    assert not is_held(entry, laptops[4].device_id)
