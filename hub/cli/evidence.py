"""`meisitong-hub evidence export --since D OUT`: a bundle an auditor verifies without the
hub (`python -m hub.evidence_verify OUT`; hub/evidence/)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import click

from hub.cli.common import console, emit_json, friendly_errors, hub_dir_option, json_option


@click.group()
def evidence() -> None:
    """Evidence bundles: signed records, the signed audit chain, TUF metadata, the report."""


@evidence.command("export")
@hub_dir_option
@click.option("--since", default=None,
              help="releases published at or after this date or instant (ISO 8601)")
@click.argument("out", type=click.Path(path_type=Path))
@json_option
@friendly_errors
def evidence_export(hub_dir: str | None, since: str | None, out: Path, as_json: bool) -> None:
    """Write the bundle to OUT (a new directory)."""
    from hub.cli.common import initialized_hub
    from hub.compliance.exceptions import parse_instant
    from hub.evidence.export import export_evidence

    started = time.perf_counter()
    manifest = export_evidence(initialized_hub(hub_dir), out,
                               parse_instant(since, "--since") if since else None,
                               datetime.now(UTC))
    manifest["seconds"] = round(time.perf_counter() - started, 3)
    if as_json:
        emit_json(manifest)
        return
    console.print(f"evidence written to {out}: {manifest['results']} signed records, "
                  f"{manifest['audit_entries']} audit entries, {manifest['report_rows']} "
                  f"report rows ({manifest['seconds']:.2f} s); check it with "
                  f"`python -m hub.evidence_verify {out}`", highlight=False)
