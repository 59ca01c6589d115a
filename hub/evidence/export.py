"""`meisitong-hub evidence export --since D OUT`: write a bundle (hub/evidence/bundle.py).

Everything is copied as the hub holds it — the result bodies as received, the chain and
witnesses as `audit verify` reads them, the served metadata files — so the verifier
checks the very bytes that were signed. The bundle is written into a scratch directory
beside OUT and renamed into place: a failed export leaves no half bundle.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from hub.audit.export import export_chain, export_witnesses, served_roots
from hub.compliance.facts import Filters
from hub.compliance.gather import gather_facts
from hub.compliance.report import compute_report
from hub.config import HubConfig
from hub.database import HubDatabase
from hub.errors import EvidenceError
from hub.evidence import bundle
from hub.hub_dir import HubDir
from hub.repository.metadata_signing import load_state, metadata_file_name
from hub.repository.target_files import consistent_paths


def _dump(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")


def _metadata(hub_dir: HubDir, out: Path) -> None:
    state = load_state(hub_dir.metadata)
    directory = out / bundle.METADATA
    directory.mkdir(parents=True)
    for number, data in enumerate(served_roots(hub_dir), start=1):
        (directory / f"{number}.root.json").write_bytes(data)
    (directory / "timestamp.json").write_bytes((hub_dir.metadata / "timestamp.json").read_bytes())
    versions = {"snapshot": state.timestamp.signed.snapshot_meta.version,
                "targets": state.snapshot.signed.meta["targets.json"].version,
                "rollout": state.snapshot.signed.meta["rollout.json"].version}
    for role, version in versions.items():
        source = hub_dir.metadata / metadata_file_name(role, version)
        (directory / f"{role}.json").write_bytes(source.read_bytes())
    signed = [*((p, t) for p, t in state.targets.signed.targets.items()
                if p.startswith("policies/")),
              *state.rollout.signed.targets.items()]
    for target_path, target in signed:
        [source, *_] = consistent_paths(hub_dir.targets, target_path, target.hashes)
        destination = out / bundle.TARGETS / target_path
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_bytes(source.read_bytes())


def export_evidence(hub_dir: HubDir, out: Path, since: datetime | None,
                    now: datetime) -> dict[str, Any]:
    """Write the bundle to `out` (which must not exist); its manifest."""
    hub_dir.require_initialized()
    if out.exists():
        raise EvidenceError(f"{out}: exists already; give a new directory")
    config = HubConfig.load(hub_dir.config_file)
    database = HubDatabase(hub_dir.database)
    try:
        facts = gather_facts(database, config.public_url, now,
                             offline_after_seconds=config.metrics.online_within)
        report = compute_report(facts, Filters(since=since))
        covered = {r.target for r in facts.releases
                   if since is None or r.published_at >= since}
        bodies = [bytes(row["body"]) for row in database.query(
            "SELECT release, body FROM results ORDER BY rowid") if row["release"] in covered]
        chain, witnesses = export_chain(database), export_witnesses(database)
        presence = {row["device_id"]: row["last_seen"]
                    for row in database.query("SELECT device_id, last_seen FROM devices")}
    finally:
        database.close()
    out.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}-"))
    try:
        (scratch / bundle.RESULTS).write_bytes(b"".join(body + b"\n" for body in bodies))
        _dump(scratch / bundle.CHAIN, chain)
        _dump(scratch / bundle.WITNESSES, witnesses)
        _metadata(hub_dir, scratch)
        _dump(scratch / bundle.PRESENCE, presence)
        _dump(scratch / bundle.REPORT, report)
        manifest = {"format": bundle.FORMAT, "hub": config.public_url, "generated_at":
                    report["generated_at"], "since": since.isoformat() if since else None,
                    "results": len(bodies), "audit_entries": len(chain),
                    "witnesses": len(witnesses), "report_rows": len(report["rows"])}
        _dump(scratch / bundle.MANIFEST, manifest)
        scratch.chmod(0o755)
        scratch.rename(out)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return manifest
