"""`meisitong-hub audit`: the audit log, filtered; `audit verify`: check it is whole."""

from __future__ import annotations

import json
import sys

import click

from hub.cli.common import (
    console,
    emit_json,
    errors,
    friendly_errors,
    hub_dir_option,
    initialized_hub,
    json_option,
)


@click.group(invoke_without_command=True)
@hub_dir_option
@json_option
@click.option("--actor", default=None, help="only entries by ACTOR (e.g. admin:alice, hub)")
@click.option("--action", default=None,
              help="only ACTION (e.g. rollout.start), or a prefix ending in .* (rollout.*)")
@click.option("--subject", default=None, help="only entries about SUBJECT")
@click.option("--since", default=None, help="from this date or instant (ISO 8601, UTC)")
@click.option("--until", default=None, help="before this date or instant (ISO 8601, UTC)")
@click.option("--limit", type=click.IntRange(min=1, max=10_000), default=100,
              show_default=True, help="the newest this many matching entries")
@click.pass_context
@friendly_errors
def audit(ctx: click.Context, hub_dir: str | None, as_json: bool, actor: str | None,
          action: str | None, subject: str | None, since: str | None, until: str | None,
          limit: int) -> None:
    """Who did what, when: the append-only, hash-chained audit log, newest last.
    `audit verify` checks it has not been edited, cut or rewritten."""
    if ctx.invoked_subcommand is not None:
        return
    from hub.audit.log import query
    from hub.database import HubDatabase

    database = HubDatabase(initialized_hub(hub_dir).database)
    try:
        rows = query(database, actor=actor, action=action, subject=subject, since=since,
                     until=until, limit=limit)
    finally:
        database.close()
    if as_json:
        emit_json(rows)
        return
    for row in rows:
        console.print(f"{row['at']}  {row['actor']:<24} {row['action']:<16} {row['subject']}  "
                      f"{json.dumps(row['detail'], sort_keys=True)}", highlight=False)


@audit.command("verify")
@hub_dir_option
@json_option
@click.option("--root-sha256", default=None, metavar="HEX",
              help="the root hash `init` printed [default: from DIR/offline-keys/offline.toml "
              "if it is there, else only printed for you to compare]")
@friendly_errors
def audit_verify(hub_dir: str | None, as_json: bool, root_sha256: str | None) -> None:
    """Recompute the chain, check every signature against the TUF root's timestamp key,
    and every head the signed timestamp and devices' heartbeats vouch for. Exit 1 on
    any problem, naming the first bad entry."""
    from hub.audit.export import export_chain, export_witnesses, served_roots
    from hub.audit.verify import verify_chain
    from hub.database import HubDatabase
    from hub.repository.offline_record import OfflineRecord, check_sha256

    directory = initialized_hub(hub_dir)
    if root_sha256 is not None:
        root_sha256 = check_sha256(root_sha256.lower(), "--root-sha256")
    elif OfflineRecord.path(directory.offline_keys).exists():
        root_sha256 = OfflineRecord.load(directory.offline_keys).root_v1_sha256
    database = HubDatabase(directory.database)
    try:
        entries, witnesses = export_chain(database), export_witnesses(database)
    finally:
        database.close()
    report = verify_chain(entries, served_roots(directory),
                          (directory.metadata / "timestamp.json").read_bytes(), witnesses,
                          root_sha256)
    if as_json:
        emit_json(report.as_dict())
    else:
        _print(report)
    if not report.ok:
        sys.exit(1)


def _print(report: object) -> None:
    from hub.audit.verify import ChainReport

    assert isinstance(report, ChainReport)
    head = f"{report.head['seq']} {report.head['hash'][:16]}…" if report.head else "none"
    console.print(f"{report.entries} entries, head {head}; root v1 "
                  f"sha256 {report.root_sha256} (compare with the one `init` printed)",
                  highlight=False)
    anchor = report.timestamp_anchor
    stamp = f"v{anchor['version']} at entry {anchor['seq']}" if anchor else "none"
    console.print(f"anchored through entry {report.anchored_through}: timestamp {stamp}, "
                  f"{report.witnesses} device witness(es)", highlight=False)
    for note in report.notes:
        console.print(f"note: {note}", highlight=False)
    if report.ok:
        console.print("audit log verified: nothing edited, removed, reordered, inserted or cut")
        return
    errors.print(f"audit log FAILED verification: {report.problems_total} problem(s), first "
                 f"bad entry {report.first_bad_seq}", highlight=False)
    for problem in report.problems:
        where = f"entry {problem.seq}" if problem.seq is not None else "—"
        errors.print(f"  [{problem.kind}] {where}: {problem.message}", highlight=False)
