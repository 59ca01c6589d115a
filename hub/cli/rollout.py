"""`meisitong-hub rollout …`: roll published releases out to device groups in stages,
watch them, and step in by hand (advance, pause, resume, abort)."""

from __future__ import annotations

from typing import Any

import click
from rich.text import Text

from hub.cli.common import (
    admin_actor,
    console,
    emit_json,
    friendly_errors,
    hub_dir_option,
    initialized_hub,
    json_option,
    parse_duration,
)
from hub.rollouts.rules import (
    DEFAULT_MIN_RESULTS,
    DEFAULT_STAGES,
    DEFAULT_SUCCESS_THRESHOLD,
    HaltTest,
)


def _int_list(_ctx: Any, _param: Any, value: str | None) -> tuple[int, ...] | None:
    if value is None:
        return None
    try:
        return tuple(int(part) for part in value.split(","))
    except ValueError:
        raise click.BadParameter(
            f"{value!r}: percentages separated by commas, e.g. 2,25,100") from None


def _name_list(_ctx: Any, _param: Any, values: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(part.strip() for value in values for part in value.split(",") if part.strip())


def _threshold(_ctx: Any, _param: Any, value: str | None) -> float | None:
    """0.98, or 98%."""
    if value is None:
        return None
    try:
        return float(value[:-1]) / 100 if value.endswith("%") else float(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r}: a fraction like 0.98 or a percentage like 98%") from None


@click.group()
def rollout() -> None:
    """Roll a published release out to a device group, stage by stage."""


@rollout.command("start")
@hub_dir_option
@click.argument("release")
@click.option("--group", required=True, help="device group")
@click.option("--stages", callback=_int_list, default=None, metavar="P1,P2,…",
              help=f"increasing percentages of the group [default "
                   f"{','.join(map(str, DEFAULT_STAGES))}]")
@click.option("--pilot-devices", multiple=True, callback=_name_list, metavar="ID|NAME,…",
              help="devices always in the first stage")
@click.option("--pilot-groups", multiple=True, callback=_name_list, metavar="GROUP,…",
              help="groups whose every device is in the first stage")
@click.option("--min-results", type=click.IntRange(min=1), default=None,
              help=f"results a stage needs before it advances [default {DEFAULT_MIN_RESULTS}, "
                   "or all its devices if fewer]")
@click.option("--success-threshold", callback=_threshold, default=None, metavar="RATE",
              help=f"share that must succeed, e.g. 0.98 or 98% "
                   f"[default {DEFAULT_SUCCESS_THRESHOLD:.0%}]")
@click.option("--soak", default=None, metavar="DURATION",
              help="least time a stage runs before it advances, e.g. 30m, 1h [default 1h]")
@click.option("--halt-test", type=click.Choice([t.value for t in HaltTest]), default=None,
              help="sprt (default): halt as soon as failures are significant; fixed: only "
                   "at the stage gate (for comparison)")
@click.option("--hold-flagged", is_flag=True,
              help="hold the release for devices in a combination (OS, model, packages) "
                   "that `compat` flags as failing significantly more, and go on for the "
                   "others")
@click.option("--no-regression-halt", is_flag=True,
              help="do not halt on health signals (restarts, crashes, CPU, memory) of "
                   "updated devices regressing against not-yet-updated ones")
@click.option("--regression-min-ratio", type=click.FloatRange(min=1, max=100), default=None,
              help="smallest regression that halts: ratio of rates or medians "
                   "[default 1.25]")
@click.option("--regression-alpha", type=click.FloatRange(min=0, max=0.5, min_open=True,
                                                          max_open=True),
              default=None, help="significance per look, shared by the signals "
                                 "[default 0.01]")
@click.option("--new-group", is_flag=True,
              help="create GROUP: no device is in it yet (else an unknown group is an error)")
@json_option
@friendly_errors
def rollout_start(hub_dir: str | None, release: str, group: str, stages: tuple[int, ...] | None,
                  pilot_devices: tuple[str, ...], pilot_groups: tuple[str, ...],
                  min_results: int | None, success_threshold: float | None, soak: str | None,
                  halt_test: str | None, hold_flagged: bool, no_regression_halt: bool,
                  regression_min_ratio: float | None, regression_alpha: float | None,
                  new_group: bool, as_json: bool) -> None:
    """Start rolling RELEASE (NAME or NAME@VERSION) out to --group."""
    from hub.rollouts.changes import start_rollout
    from hub.rollouts.rules import RolloutPlan

    rules: dict[str, Any] = {}
    if min_results is not None:
        rules["min_results"] = min_results
    if success_threshold is not None:
        rules["success_threshold"] = success_threshold
    if soak is not None:
        rules["soak_seconds"] = int(parse_duration(soak).total_seconds())
    if halt_test is not None:
        rules["halt_test"] = halt_test
    if hold_flagged:
        rules["hold_flagged"] = True
    if no_regression_halt:
        rules["regression_halt"] = False
    if regression_min_ratio is not None:
        rules["regression_min_ratio"] = regression_min_ratio
    if regression_alpha is not None:
        rules["regression_alpha"] = regression_alpha
    plan: dict[str, Any] = {"pilot_devices": pilot_devices, "pilot_groups": pilot_groups,
                            "rules": rules}
    if stages is not None:
        plan["stages"] = stages
    entry = start_rollout(initialized_hub(hub_dir), release, group,
                          RolloutPlan.parse(plan, "rollout start"), admin_actor(), new_group)
    if as_json:
        emit_json({"group": group, **entry.model_dump(mode="json")})
    else:
        console.print(f"rollout of {entry.release} to group {group}: {entry.state}, stages "
                      f"{' → '.join(f'{s}%' for s in entry.stages)}, now at {entry.stage_percent}%")


@rollout.command("status")
@hub_dir_option
@click.argument("release", required=False)
@click.option("--group", default=None, help="only this group's rollouts")
@json_option
@friendly_errors
def rollout_status_command(hub_dir: str | None, release: str | None, group: str | None,
                           as_json: bool) -> None:
    """Every rollout (or RELEASE's): stage, results per stage, and what comes next."""
    from hub.rollouts.status import rollout_status

    rows = rollout_status(initialized_hub(hub_dir), release, group)
    if as_json:
        emit_json(rows)
        return
    if not rows:
        console.print("no rollouts")
    for row in rows:
        console.print(Text.assemble(
            (row["release"], "bold"),
            f" → {row['group']}: {row['state']}{' (aborted)' if row['aborted'] else ''}, stage "
            f"{row['current_stage'] + 1}/{len(row['stages'])} at "
            f"{row['stage_percent']}% since {row['stage_started_at']}",
        ))
        for stage in row["stages"]:
            marker = "▶" if stage["current"] else " "
            console.print(f"  {marker} {stage['percent']:>3}%  {stage['members']:>5} devices  "
                          f"{stage['successes']} ok, {stage['failures']} failed "
                          f"(needs {stage['required']})", highlight=False)
        if row["held_devices"]:
            console.print(f"  held for {len(row['held_devices'])} device(s) in flagged "
                          "combinations (`audit --action rollout.hold` says why)",
                          highlight=False)
        console.print(f"  next: {row['next']}", highlight=False)


def _change_command(action: str, summary: str) -> click.Command:
    @click.command(action, help=f"{summary} RELEASE's rollout to --group.")
    @hub_dir_option
    @click.argument("release")
    @click.option("--group", required=True, help="device group")
    @click.option("--reason", default="", help="why, for the audit log")
    @json_option
    @friendly_errors
    def command(hub_dir: str | None, release: str, group: str, reason: str,
                as_json: bool) -> None:
        from hub.rollouts.changes import RolloutAction, change_rollout

        changed = change_rollout(initialized_hub(hub_dir), release, group,
                                 RolloutAction(action), admin_actor(), reason)
        entry = changed.entry()
        if as_json:
            emit_json({"group": changed.group, "aborted": changed.aborted,
                       **entry.model_dump(mode="json")})
        else:
            console.print(f"rollout of {entry.release} to group {changed.group}: "
                          f"{entry.state}{' (aborted)' if changed.aborted else ''}, "
                          f"stage {entry.current_stage + 1}/{len(entry.stages)} at "
                          f"{entry.stage_percent}%")

    return command


@rollout.command("unhold")
@hub_dir_option
@click.argument("release")
@click.option("--group", required=True, help="device group")
@click.option("--devices", multiple=True, callback=_name_list, metavar="ID|NAME,…",
              help="only these held devices [default: every held device]")
@click.option("--reason", default="", help="why, for the audit log")
@json_option
@friendly_errors
def rollout_unhold(hub_dir: str | None, release: str, group: str, devices: tuple[str, ...],
                   reason: str, as_json: bool) -> None:
    """Lift the compatibility holds (`--hold-flagged`) of RELEASE's rollout to --group:
    the devices take the release as their stage allows, and the controller does not
    hold them again for this rollout."""
    from hub.rollouts.changes import unhold_devices

    released = unhold_devices(initialized_hub(hub_dir), release, group, devices,
                              admin_actor(), reason)
    if as_json:
        emit_json({"released": list(released)})
    else:
        console.print(f"released {len(released)} device(s) from the hold")


for _action, _summary in (("advance", "Widen to the next stage of"), ("pause", "Pause"),
                          ("resume", "Resume (after a pause or a halt)"),
                          ("abort", "Stop for good")):
    rollout.add_command(_change_command(_action, _summary))
