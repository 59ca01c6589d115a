"""`meisitong-hub compat RELEASE`: which combinations of what devices run (OS version,
hardware model, packages and their versions) fail the release significantly more often
than the rest (hub/compat/)."""

from __future__ import annotations

import click
from rich.table import Table

from hub.cli.common import console, friendly_errors, hub_dir_option, initialized_hub
from hub.compat.matrix import (
    DEFAULT_ALPHA,
    DEFAULT_MIN_DEVICES,
    DEFAULT_MIN_FAILURES,
    METHOD,
    CompatMatrix,
    CompatSettings,
)


def compat_matrix(hub_dir: str | None, release_spec: str, group: str | None,
                  settings: CompatSettings) -> tuple[str, CompatMatrix]:
    """The release's target path and its matrix, read in one consistent transaction."""
    from hub.compat.gather import observe, paused_gc
    from hub.compat.matrix import analyse
    from hub.database import HubDatabase
    from hub.errors import UnknownGroupError
    from hub.rollouts.changes import find_release

    database = HubDatabase(initialized_hub(hub_dir).database)
    try:
        target = find_release(database, release_spec)["target"]
        with database.read_transaction() as db:
            if group is not None and db.execute(
                    "SELECT 1 FROM devices WHERE grp = ? LIMIT 1", (group,)).fetchone() is None:
                raise UnknownGroupError(f"--group {group!r}: no enrolled device is in it")
            with paused_gc():
                observed = observe(db, target, group)
    finally:
        database.close()
    with paused_gc():
        return target, analyse(observed.observations, settings, observed.without_inventory)


@click.command("compat")
@hub_dir_option
@click.argument("release")
@click.option("--group", default=None, help="only devices of GROUP")
@click.option("--format", "output_format", type=click.Choice(("table", "json", "csv")),
              default="table", show_default=True)
@click.option("--alpha", type=click.FloatRange(0, 1, min_open=True, max_open=True),
              default=DEFAULT_ALPHA, show_default=True,
              help="family-wise error rate of the flags")
@click.option("--min-devices", type=click.IntRange(min=1), default=DEFAULT_MIN_DEVICES,
              show_default=True, help="reporting devices a combination needs to be tested")
@click.option("--min-failures", type=click.IntRange(min=1), default=DEFAULT_MIN_FAILURES,
              show_default=True, help="failures a combination needs to be tested")
@click.option("--limit", type=click.IntRange(min=1), default=30, show_default=True,
              help="rows in the table (json and csv have every combination)")
@friendly_errors
def compat(hub_dir: str | None, release: str, group: str | None, output_format: str,
           alpha: float, min_devices: int, min_failures: int, limit: int) -> None:
    """Cross RELEASE's results (failed, reverted, revert-failed vs installed; each
    device's latest) with its devices' inventory: OS, hardware model (DMI product name),
    architecture, kernel, packages and package versions. Attribute values that pick the
    same devices are one combination. Flags combinations whose failure rate is
    significantly higher than the other devices': one-sided Fisher exact test, Holm
    correction over the hypotheses Tarone's criterion keeps."""
    from hub.compat.render import to_csv, to_json

    target, matrix = compat_matrix(hub_dir, release, group,
                                   CompatSettings(alpha, min_devices, min_failures))
    if output_format == "json":
        click.echo(to_json(matrix, target, group), nl=False)
    elif output_format == "csv":
        click.echo(to_csv(matrix), nl=False)
    else:
        _print_table(matrix, target, group, limit)


def _print_table(matrix: CompatMatrix, target: str, group: str | None, limit: int) -> None:
    outcomes = ", ".join(f"{count} {outcome}" for outcome, count in matrix.outcomes.items())
    console.print(f"{target}, group {group or 'all'}: {matrix.reporting} devices reported "
                  f"({outcomes or 'none'}); {matrix.failures} failures", highlight=False)
    console.print(f"test: {METHOD}; alpha {matrix.settings.alpha}, at least "
                  f"{matrix.settings.min_devices} devices and {matrix.settings.min_failures} "
                  f"failures; {matrix.tested} hypotheses kept", highlight=False)
    if matrix.without_inventory:
        console.print(f"{len(matrix.without_inventory)} reporting device(s) without an "
                      "inventory are left out", highlight=False)
    if not matrix.combinations:
        console.print("no results to cross yet")
        return
    table = Table("flag")
    table.add_column("attributes", overflow="fold", min_width=24)
    for header in ("failed", "rate", "rest failed", "rest rate", "p", "adjusted p"):
        table.add_column(header, no_wrap=True)
    for combination in matrix.combinations[:limit]:
        names = [str(a) for a in combination.attributes]
        shown = ", ".join(names[:3]) + (f" (+{len(names) - 3} more)" if len(names) > 3 else "")
        table.add_row(
            "FLAG" if combination.flagged else "", shown,
            f"{combination.failures}/{len(combination.devices)}", f"{combination.rate:.0%}",
            f"{combination.rest_failures}/{combination.rest_devices}",
            f"{combination.rest_rate:.0%}", _p(combination.p_value), _p(combination.adjusted_p))
    console.print(table)
    hidden = len(matrix.combinations) - limit
    if hidden > 0:
        console.print(f"{hidden} more combination(s): --limit, or --format json|csv")


def _p(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"
