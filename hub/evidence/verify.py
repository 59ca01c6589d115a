"""Checking an evidence bundle without trusting the hub: every signature, then the report
recomputed from what was signed. No database, no hub directory, no network.

What is trusted, and why:

- root v1 of the bundle, whose SHA-256 the admin noted off the server (it is printed:
  compare it), and every later root it signs, as a TUF client walks them;
- through the roots: the timestamp key (signs the audit chain's entries and the
  timestamp), the snapshot key, the offline release key (targets: each release's
  facts — severity, `published_at` — and each group's policy file hash), and through
  targets the delegated rollout key (the rollout documents' hashes);
- device keys: each device's Ed25519 public key is in its `device.enroll` entry of the
  audit chain (the hub writes it there when the device enrolls with a token, having
  checked the device's proof of possession). The chain is hash-linked, signed with the
  timestamp key and its head is signed back by the devices in their heartbeats, so a key
  cannot be swapped or a device slipped in before a witnessed head without the chain
  check failing. What this cannot rule out: a hub holding its online keys could enroll a
  phantom device after the last witnessed head; it stays in the chain for good, with
  its enrollment time, for the auditor to see. Devices enrolled before enrollment
  entries carried the key cannot be checked and are reported.
- group membership, device names and sites, and admin exceptions are replayed from the
  chain too (`device.enroll`, `device.group`, `device.remove`, `exception.add`,
  `exception.remove`);
- the hub's word alone: each device's last contact (`presence.json`), which decides only
  whether a non-compliant row reads "offline since"; said in the notes.

Each finding names the part that failed: `record` (a result record whose signature does
not verify or whose device is unknown), `chain` (the audit log), `metadata` (TUF
metadata or a target file), `report` (the report does not match the one recomputed).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tuf.api.metadata import Metadata, Root, Snapshot, Targets, Timestamp

from agent.errors import AgentError
from agent.policy import Policy
from agent.wire.release import CUSTOM_KEY, ReleaseInfo
from agent.wire.result import SignedResult
from agent.wire.rollout import GroupRollouts
from hub.audit.verify import verify_chain
from hub.compliance.exceptions import ADD_ACTION, REMOVE_ACTION
from hub.compliance.facts import (
    AdminException,
    ComplianceFacts,
    DeviceFact,
    Filters,
    ReleaseFact,
    ResultFact,
    RolloutFact,
)
from hub.compliance.report import compute_report
from hub.evidence.bundle import Bundle

MAX_LISTED = 20
"""Report differences listed one by one; the rest are counted."""


@dataclass(frozen=True)
class Finding:
    part: str
    """record, chain, metadata or report"""
    message: str


@dataclass
class EvidenceReport:
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    records: int = 0
    records_verified: int = 0
    audit_entries: int = 0
    witnessed_through: int = 0
    """The highest audit entry a signed timestamp or a device's heartbeat vouches for."""
    witnesses: int = 0
    devices: int = 0
    root_sha256: str | None = None

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def failed_parts(self) -> list[str]:
        return sorted({finding.part for finding in self.findings})

    def add(self, part: str, message: str) -> None:
        self.findings.append(Finding(part, message))

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "failed_parts": self.failed_parts,
                "findings": [f.__dict__ for f in self.findings], "notes": self.notes,
                "records": self.records, "records_verified": self.records_verified,
                "audit_entries": self.audit_entries, "devices": self.devices,
                "witnesses": self.witnesses, "witnessed_through": self.witnessed_through,
                "root_sha256": self.root_sha256}


def _time(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# -- TUF metadata -----------------------------------------------------------------------


@dataclass
class _Signed:
    releases: list[ReleaseFact] = field(default_factory=list)
    policies: dict[str, Policy] = field(default_factory=dict)
    rollouts: dict[str, list[RolloutFact]] = field(default_factory=dict)


def _trusted_root(bundle: Bundle, report: EvidenceReport) -> Metadata[Root] | None:
    trusted: Metadata[Root] | None = None
    for number, data in enumerate(bundle.roots, start=1):
        try:
            md = Metadata[Root].from_bytes(data)
            if trusted is not None:
                trusted.verify_delegate(Root.type, md)
            md.verify_delegate(Root.type, md)
        except Exception as exc:  # noqa: BLE001 - every failure means: not trusted
            report.add("metadata", f"root #{number} does not verify: {exc}")
            return None
        trusted = md
    if trusted is None:
        report.add("metadata", "no root metadata in the bundle")
    return trusted


def _signed_metadata(bundle: Bundle, report: EvidenceReport) -> _Signed | None:
    root = _trusted_root(bundle, report)
    if root is None:
        return None
    try:
        timestamp = Metadata[Timestamp].from_bytes(bundle.metadata["timestamp"])
        root.verify_delegate(Timestamp.type, timestamp)
        snapshot = Metadata[Snapshot].from_bytes(bundle.metadata["snapshot"])
        root.verify_delegate(Snapshot.type, snapshot)
        if snapshot.signed.version != timestamp.signed.snapshot_meta.version:
            raise ValueError("snapshot.json is not the version timestamp.json names")
        targets = Metadata[Targets].from_bytes(bundle.metadata["targets"])
        root.verify_delegate(Targets.type, targets)
        rollout = Metadata[Targets].from_bytes(bundle.metadata["rollout"])
        targets.verify_delegate("rollout", rollout)
        for role, md in (("targets", targets), ("rollout", rollout)):
            if snapshot.signed.meta[f"{role}.json"].version != md.signed.version:
                raise ValueError(f"{role}.json is not the version snapshot.json names")
    except Exception as exc:  # noqa: BLE001 - tuf raises many kinds; all mean "refused"
        report.add("metadata", f"TUF metadata does not verify: {exc}")
        return None
    signed = _Signed()
    for path, target in targets.signed.targets.items():
        if isinstance(target.custom, dict) and CUSTOM_KEY in target.custom:
            try:
                info = ReleaseInfo.from_custom(target.custom, path)
            except AgentError as exc:
                report.add("metadata", str(exc))
                continue
            manifest = info.manifest
            signed.releases.append(ReleaseFact(path, manifest.name, manifest.version,
                                               str(manifest.severity), manifest.category,
                                               _time(info.published_at)))
        elif path.startswith("policies/") and path.endswith(".toml"):
            data = _target_bytes(bundle, path, target, report)
            if data is not None:
                try:
                    signed.policies[path[len("policies/"):-len(".toml")]] = Policy.from_toml(
                        data, path)
                except AgentError as exc:
                    report.add("metadata", str(exc))
    for path, target in rollout.signed.targets.items():
        data = _target_bytes(bundle, path, target, report)
        if data is None:
            continue
        group = path[len("rollouts/"):-len(".json")]
        try:
            document = GroupRollouts.from_bytes(data, group)
        except AgentError as exc:
            report.add("metadata", str(exc))
            continue
        for entry in document.rollouts:
            if group not in entry.pilot_groups:
                signed.rollouts.setdefault(entry.release, []).append(RolloutFact(group, entry))
    return signed


def _target_bytes(bundle: Bundle, path: str, target: Any, report: EvidenceReport
                  ) -> bytes | None:
    data = bundle.targets.get(path)
    if data is None:
        report.add("metadata", f"target file {path} is missing from the bundle")
        return None
    try:
        target.verify_length_and_hashes(data)
    except Exception:  # noqa: BLE001 - a length or hash mismatch
        report.add("metadata", f"target file {path} does not match its signed length and "
                   "hashes (tampered)")
        return None
    return data


# -- the audit chain: devices and exceptions ---------------------------------------------


@dataclass
class _Registry:
    keys: dict[str, bytes] = field(default_factory=dict)
    devices: dict[str, dict[str, Any]] = field(default_factory=dict)
    exceptions: dict[tuple[str, str], AdminException] = field(default_factory=dict)


def _replay(chain: list[dict[str, Any]]) -> _Registry:
    """What the chain says about devices and exceptions, in seq order. Mirrors what the
    hub's tables keep (hub/devices/enrollment.py, hub/compliance/exceptions.py)."""
    registry = _Registry()
    for entry in chain:
        if entry.get("seq") is None or not isinstance(entry.get("detail"), dict):
            continue
        action, subject, detail = entry["action"], entry["subject"], entry["detail"]
        if action == "device.enroll":
            key = detail.get("public_key")
            if isinstance(key, str):
                registry.keys.setdefault(subject, bytes.fromhex(key))
            name = detail.get("name") or detail.get("hostname") or ""
            known = registry.devices.get(subject)
            if known is None:
                registry.devices[subject] = {"name": name, "group": detail.get("group", ""),
                                             "site": detail.get("site", ""),
                                             "status": "accepted"}
            else:
                known.update(name=name, status="accepted")
        elif action == "device.group" and subject in registry.devices:
            registry.devices[subject]["group"] = detail.get("group", "")
        elif action == "device.remove" and subject in registry.devices:
            registry.devices[subject]["status"] = "removed"
        elif action == ADD_ACTION:
            registry.exceptions[(subject, detail["release"])] = AdminException(
                subject, detail["release"], detail["reason"], _time(detail["expires_at"]),
                entry["actor"], _time(entry["at"]))
        elif action == REMOVE_ACTION:
            registry.exceptions.pop((subject, detail.get("release", "")), None)
    return registry


# -- records, and the report --------------------------------------------------------------


def _records(bundle: Bundle, registry: _Registry, report: EvidenceReport
             ) -> list[ResultFact]:
    facts = []
    for number, line in enumerate(bundle.results, start=1):
        report.records += 1
        try:
            signed = SignedResult.from_bytes(line, f"results.jsonl line {number}")
        except AgentError as exc:
            report.add("record", f"{exc} (tampered)")
            continue
        record = signed.record
        where = f"record {record.record_id} of device {record.device_id} (line {number})"
        key = registry.keys.get(record.device_id)
        if key is None:
            report.add("record", f"{where}: no enrollment entry of the audit chain gives "
                       "this device's key, so its signature cannot be checked")
            continue
        try:
            signed.verify(key)
        except AgentError:
            report.add("record", f"{where}: its signature does not verify (tampered)")
            continue
        report.records_verified += 1
        facts.append(ResultFact(record.device_id, record.release, record.outcome.value,
                                record.reason, _time(record.finished_at)))
    return facts


def _normalized(data: Any) -> Any:
    return json.loads(json.dumps(data, sort_keys=True))


def _compare(claimed: dict[str, Any], recomputed: dict[str, Any],
             report: EvidenceReport) -> None:
    differences: list[str] = []
    for key in sorted(set(claimed) | set(recomputed)):
        if key in ("rows", "exceptions", "summary", "releases"):
            continue
        if claimed.get(key) != recomputed.get(key):
            differences.append(f"{key}: {claimed.get(key)!r} in the report, "
                               f"{recomputed.get(key)!r} recomputed")
    for part, keys in (("summary", ("group", "severity")),
                       ("releases", ("group", "severity", "release")),
                       ("rows", ("device_id", "release")),
                       ("exceptions", ("device_id", "release"))):
        mine = {tuple(r.get(k) for k in keys): r for r in recomputed.get(part, [])}
        theirs = {tuple(r.get(k) for k in keys): r for r in claimed.get(part, []) or []}
        for row_key in sorted(set(mine) | set(theirs), key=str):
            a, b = theirs.get(row_key), mine.get(row_key)
            label = f"{part} {'/'.join(str(k) for k in row_key)}"
            if a is None:
                differences.append(f"{label}: missing from the report, recomputed from the "
                                   "signed records")
                continue
            if b is None:
                differences.append(f"{label}: in the report, not recomputed from the "
                                   "signed records")
                continue
            for name in sorted(set(a) | set(b)):
                if a.get(name) != b.get(name):
                    differences.append(f"{label}: {name} is {a.get(name)!r} in the report, "
                                       f"{b.get(name)!r} recomputed")
    for text in differences[:MAX_LISTED]:
        report.add("report", text)
    if len(differences) > MAX_LISTED:
        report.add("report", f"… and {len(differences) - MAX_LISTED} more differences")


def verify_bundle(bundle: Bundle) -> EvidenceReport:
    """Check everything in `bundle`; never raises on bad content (findings instead)."""
    report = EvidenceReport()
    chain = verify_chain(bundle.chain, bundle.roots, bundle.metadata.get("timestamp"),
                         bundle.witnesses)
    report.audit_entries, report.root_sha256 = chain.entries, chain.root_sha256
    report.witnesses, report.witnessed_through = chain.witnesses, chain.anchored_through
    for problem in chain.problems:
        where = f"entry {problem.seq}: " if problem.seq is not None else ""
        report.add("chain", f"[{problem.kind}] {where}{problem.message}")
    report.notes += chain.notes
    signed = _signed_metadata(bundle, report)
    registry = _replay(bundle.chain)
    results = _records(bundle, registry, report)
    claimed = bundle.report
    try:
        filters = claimed["filters"]
        since = filters.get("since")
        if since != bundle.manifest.get("since"):
            report.add("report", f"its --since {since!r} is not the bundle's "
                       f"{bundle.manifest.get('since')!r}")
        now = _time(claimed["generated_at"])
        offline_after = float(claimed["offline_after_seconds"])
        hub = str(claimed["hub"])
        chosen = Filters(filters.get("group"), filters.get("severity"),
                         _time(since) if since else None)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        report.add("report", f"report.json is malformed: {exc!r}")
        return report
    if signed is None:
        report.add("report", "not recomputed: the signed metadata did not verify")
        return report
    devices = []
    for device_id, known in sorted(registry.devices.items()):
        if known["status"] != "accepted":
            continue
        seen = bundle.presence.get(device_id)
        devices.append(DeviceFact(device_id, known["name"], known["group"], known["site"],
                                  _time(seen) if seen else None))
    report.devices = len(devices)
    facts = ComplianceFacts(hub=hub, now=now, releases=signed.releases,
                            rollouts=signed.rollouts, devices=devices, results=results,
                            policies=signed.policies,
                            exceptions=list(registry.exceptions.values()),
                            offline_after_seconds=offline_after)
    _compare(_normalized(claimed), _normalized(compute_report(facts, chosen)), report)
    report.notes.append("devices' last contact (presence.json, which decides only whether a "
                        "row reads \"offline since\") is the hub's word: nobody signs it")
    return report
