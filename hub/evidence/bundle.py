"""The layout of an evidence bundle: a directory of files, as the hub had them.

    manifest.json          what this is, when and by whom it was made, the --since used
    results.jsonl          every device-signed result record of the covered releases, one
                           per line, byte for byte as the hub received and stored it
    audit/chain.json       the hash-chained, signed audit log (hub/audit/export.py)
    audit/witnesses.json   the audit heads devices signed in their heartbeats
    metadata/N.root.json   every root version, oldest first (root v1: the admin's anchor)
    metadata/timestamp.json, snapshot.json, targets.json, rollout.json
                           the signed TUF metadata in force (targets: each release's
                           admin-signed facts, the policies' hashes; rollout: the rollout
                           documents' hashes)
    targets/policies/GROUP.toml, targets/rollouts/GROUP.json
                           the signed target files those hashes cover
    presence.json          the hub's own record of each device's last contact: not signed
                           by anyone, so the "offline since" it gives is the hub's word
    report.json            the compliance report (hub/compliance/report.py) the hub computed

The verifier reads nothing else: no database, no hub directory, no network.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hub.errors import EvidenceError

FORMAT = "meisitong-evidence/1"
MANIFEST = "manifest.json"
RESULTS = "results.jsonl"
CHAIN = "audit/chain.json"
WITNESSES = "audit/witnesses.json"
METADATA = "metadata"
TARGETS = "targets"
PRESENCE = "presence.json"
REPORT = "report.json"
ROLES = ("timestamp", "snapshot", "targets", "rollout")


@dataclass
class Bundle:
    """A bundle's contents as bytes and parsed JSON, read once."""

    manifest: dict[str, Any]
    results: list[bytes]
    chain: list[dict[str, Any]]
    witnesses: list[dict[str, Any]]
    roots: list[bytes]
    metadata: dict[str, bytes]
    targets: dict[str, bytes] = field(default_factory=dict)
    presence: dict[str, str | None] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except OSError as exc:
        raise EvidenceError(f"{path}: cannot read: {exc.strerror}") from None
    except ValueError as exc:
        raise EvidenceError(f"{path}: not JSON: {exc}") from None


def read_bundle(root: Path) -> Bundle:
    """Read a bundle directory; EvidenceError names a missing or unreadable part."""
    if not (root / MANIFEST).is_file():
        raise EvidenceError(f"{root}: not an evidence bundle (no {MANIFEST})")
    manifest = _json(root / MANIFEST)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise EvidenceError(f"{root / MANIFEST}: not a {FORMAT} bundle")
    try:
        results = [line for line in (root / RESULTS).read_bytes().splitlines() if line]
    except OSError as exc:
        raise EvidenceError(f"{root / RESULTS}: cannot read: {exc.strerror}") from None
    metadata_dir = root / METADATA
    numbered = sorted((int(p.name.split(".", 1)[0]), p) for p in metadata_dir.glob("*.root.json")
                      if p.name.split(".", 1)[0].isdigit())
    metadata = {}
    for role in ROLES:
        path = metadata_dir / f"{role}.json"
        if not path.is_file():
            raise EvidenceError(f"{path}: missing")
        metadata[role] = path.read_bytes()
    targets_dir = root / TARGETS
    targets = {path.relative_to(targets_dir).as_posix(): path.read_bytes()
               for path in sorted(targets_dir.rglob("*")) if path.is_file()}
    return Bundle(manifest=manifest, results=results, chain=_json(root / CHAIN),
                  witnesses=_json(root / WITNESSES),
                  roots=[path.read_bytes() for _, path in numbered], metadata=metadata,
                  targets=targets, presence=_json(root / PRESENCE), report=_json(root / REPORT))
