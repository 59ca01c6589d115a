"""Verifying an exported audit chain without trusting the hub: a pure function.

Inputs are what an auditor carries away (hub/audit/export.py, or an evidence bundle):
the entries as JSON objects, the TUF root metadata (every version, oldest first: root v1
is the one whose SHA-256 the admin noted off the server), optionally the timestamp
metadata the hub serves, and the heartbeats devices signed with their public keys. No
database, no hub directory, no network.

What is checked, in this order, and what each failure means:

- the roots: v1 signs itself, each later version is signed by its predecessor's root
  keys and its own (as a TUF client walks them); the keys of the `timestamp` role in any
  of them are the keys entries may be signed with;
- every entry: its seq follows the one before (a gap is a *removed* entry, a step back a
  *reordered or duplicated* one), its `prev` is the hash of the entry before (else one
  was *inserted, removed or reordered* there), its fields hash to its `hash` (else it
  was *edited*), its signature verifies under a trusted key (else it was *re-signed* by
  a foreign key or not signed); rows outside the chain were *inserted* past it;
- the anchors: the head (seq, hash) the signed timestamp carries, and each device-signed
  heartbeat's head, must name an entry the chain holds with that very hash. A head past
  the chain's end means its tail was *truncated*; a different hash means the chain was
  *rewritten* — which catches even a hub that recomputed and re-signed every entry with
  its real key, since it cannot make devices sign the new head.

Entries after the highest anchor are vouched for by their signatures only: the hub's key
could rewrite or drop them until a timestamp or a device carries a later head.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from securesystemslib.signer import Key
from tuf.api.metadata import Metadata, Root, Timestamp

from agent.errors import AgentError
from agent.wire.audit_head import AuditHead, audit_head_in
from agent.wire.heartbeat import SignedHeartbeat
from hub.audit.entry import CHAIN_START_ACTION, GENESIS_PREV, HASHED_FIELDS, hash_of

MAX_PROBLEMS = 100
"""Problems listed in full; a chain cut early would otherwise list every later entry."""


@dataclass(frozen=True)
class Problem:
    seq: int | None
    kind: str
    """removed, reordered, unlinked, edited, unsigned, unknown-key, bad-signature,
    outside-chain, malformed, truncated, rewritten, bad-anchor, bad-witness, root"""
    message: str


@dataclass
class ChainReport:
    entries: int = 0
    head: dict[str, Any] | None = None
    root_sha256: str | None = None
    """Of the first root given: compare it with the one `init` printed."""
    trust_starts_at: int = 1
    """Entries before this seq were adopted from a log older than the chain."""
    timestamp_anchor: dict[str, Any] | None = None
    witnesses: int = 0
    witnessed_devices: list[str] = field(default_factory=list)
    witnessed_through: int = 0
    """The highest seq a device's signed heartbeat vouches for."""
    anchored_through: int = 0
    """The highest seq a timestamp or a device vouches for."""
    problems: list[Problem] = field(default_factory=list)
    problems_total: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.problems_total == 0

    @property
    def first_bad_seq(self) -> int | None:
        seqs = [p.seq for p in self.problems if p.seq is not None]
        return min(seqs) if seqs else None

    def add(self, seq: int | None, kind: str, message: str) -> None:
        self.problems_total += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(Problem(seq, kind, message))

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ok"] = self.ok
        data["first_bad_seq"] = self.first_bad_seq
        return data


def verify_chain(
    entries: Sequence[Mapping[str, Any]],
    roots: Sequence[bytes],
    timestamp: bytes | None = None,
    witnesses: Sequence[Mapping[str, Any]] = (),
    root_sha256: str | None = None,
) -> ChainReport:
    """Check `entries` (exported, in seq order) against `roots`, `timestamp` and
    `witnesses` (each: device_id, public_key hex of the raw Ed25519 key, heartbeat text
    as signed). `root_sha256`: the hash root v1 must have (the one `init` printed);
    without it, compare `report.root_sha256` by eye. Never raises on bad data: every
    finding is a Problem in the report."""
    report = ChainReport()
    trusted_root, keys = _trusted_keys(roots, report)
    if root_sha256 is not None and report.root_sha256 != root_sha256.lower():
        report.add(None, "root", f"root v1 has sha256 {report.root_sha256}, not the pinned "
                   f"{root_sha256}: these roots are not the ones the admin noted")
        keys = {}
    hashes = _walk(entries, keys, report)
    if timestamp is not None:
        _check_timestamp(timestamp, trusted_root, hashes, report)
    else:
        report.notes.append("no timestamp metadata given: the tail is not checked against it")
    for witness in witnesses:
        _check_witness(witness, hashes, report)
    if report.entries == 0 and report.problems_total:
        report.notes.append("no entry is chained: a log an older hub wrote, chained by the "
                            "first audited change or `serve` start of this version")
    if report.head is not None and report.anchored_through < report.head["seq"]:
        report.notes.append(
            f"entries {report.anchored_through + 1}..{report.head['seq']} are not yet "
            "anchored (signed only: the hub's key could still rewrite or drop them)")
    return report


# -- roots ------------------------------------------------------------------------------


def _trusted_keys(roots: Sequence[bytes], report: ChainReport
                  ) -> tuple[Metadata[Root] | None, dict[str, Ed25519PublicKey]]:
    """The newest root that chains from the first, and every timestamp key on the way."""
    keys: dict[str, Ed25519PublicKey] = {}
    trusted: Metadata[Root] | None = None
    for number, data in enumerate(roots, start=1):
        if number == 1:
            report.root_sha256 = hashlib.sha256(data).hexdigest()
        try:
            md = Metadata[Root].from_bytes(data)
            if not isinstance(md.signed, Root):
                raise ValueError(f"it holds {md.signed.type} metadata")
            if trusted is not None:
                if md.signed.version != trusted.signed.version + 1:
                    raise ValueError(f"version {md.signed.version} does not follow "
                                     f"{trusted.signed.version}")
                trusted.verify_delegate(Root.type, md)
            md.verify_delegate(Root.type, md)
        except Exception as exc:  # noqa: BLE001 - tuf and json raise many kinds; all mean "refused"
            report.add(None, "root", f"root #{number} does not chain from the one before: {exc}")
            break
        trusted = md
        for keyid in md.signed.roles[Timestamp.type].keyids:
            public = _ed25519(md.signed.keys[keyid])
            if public is not None:
                keys[keyid] = public
    if not roots:
        report.add(None, "root", "no root metadata given: no signature can be trusted")
    return trusted, keys


def _ed25519(key: Key) -> Ed25519PublicKey | None:
    if key.keytype != "ed25519":
        return None
    try:
        return Ed25519PublicKey.from_public_bytes(bytes.fromhex(key.keyval["public"]))
    except (KeyError, ValueError):
        return None


# -- entries ----------------------------------------------------------------------------


def _walk(entries: Sequence[Mapping[str, Any]], keys: dict[str, Ed25519PublicKey],
          report: ChainReport) -> dict[int, str]:
    """Check each entry against the one before; the hash of each seq seen."""
    hashes: dict[int, str] = {}
    expected, prev = 1, GENESIS_PREV
    for entry in entries:
        seq = entry.get("seq")
        if seq is None:
            report.add(None, "outside-chain",
                       f"audit row {entry.get('audit_id')} ({entry.get('action')} at "
                       f"{entry.get('at')}) is in no chain entry: written past the chain")
            continue
        if not isinstance(seq, int) or not all(name in entry for name in HASHED_FIELDS):
            report.add(seq if isinstance(seq, int) else None, "malformed",
                       f"entry {seq!r} lacks fields of {', '.join(HASHED_FIELDS)}")
            continue
        linked = True
        if seq > expected:
            missing = f"{expected}" if seq == expected + 1 else f"{expected}..{seq - 1}"
            report.add(expected, "removed", f"entries {missing} are missing (removed)")
            linked = False
        elif seq < expected:
            report.add(seq, "reordered",
                       f"entry {seq} comes after entry {expected - 1} (reordered or duplicated)")
            linked = False
        if linked and entry["prev"] != prev:
            report.add(seq, "unlinked",
                       f"entry {seq} does not follow entry {seq - 1}: its prev is not that "
                       "entry's hash (an entry was inserted, removed or reordered here)")
        if entry.get("at") is None:
            report.add(seq, "edited", f"entry {seq}: its content is gone (audit row removed)")
        else:
            _check_content(seq, entry, keys, report)
        digest = str(entry.get("hash", ""))
        hashes.setdefault(seq, digest)
        expected, prev = max(expected, seq + 1), digest
        if entry["action"] == CHAIN_START_ACTION and isinstance(entry["detail"], dict):
            report.trust_starts_at = int(entry["detail"].get("last_seq", 0)) + 1
            report.notes.append(
                f"entries 1..{report.trust_starts_at - 1} were written before this hub "
                f"chained its log and adopted at entry {seq}: vouched for from then on")
        report.entries += 1
        report.head = {"seq": seq, "hash": digest}
    return hashes


def _check_content(seq: int, entry: Mapping[str, Any], keys: dict[str, Ed25519PublicKey],
                   report: ChainReport) -> None:
    try:
        recomputed = hash_of(dict(entry))
    except (TypeError, ValueError) as exc:
        report.add(seq, "malformed", f"entry {seq}: cannot be hashed: {exc}")
        return
    if recomputed != entry.get("hash"):
        report.add(seq, "edited", f"entry {seq}: its fields do not hash to its hash (edited)")
        return
    key_id, signature = entry.get("key_id") or "", entry.get("signature") or ""
    if not signature:
        report.add(seq, "unsigned", f"entry {seq} is not signed")
        return
    public = keys.get(str(key_id))
    if public is None:
        report.add(seq, "unknown-key",
                   f"entry {seq} is signed by key {str(key_id)[:16]}…, which no trusted "
                   "root lists for the timestamp role (re-signed by a foreign key)")
        return
    try:
        public.verify(bytes.fromhex(str(signature)), bytes.fromhex(recomputed))
    except (InvalidSignature, ValueError):
        report.add(seq, "bad-signature", f"entry {seq}: its signature does not verify")


# -- anchors ----------------------------------------------------------------------------


def _check_head(head: AuditHead, where: str, hashes: dict[int, str], report: ChainReport,
                kind_if_bad: str = "rewritten") -> bool:
    last = report.head["seq"] if report.head else 0
    if head.seq > last:
        report.add(last + 1, "truncated",
                   f"the chain ends at entry {last} but {where} names entry {head.seq}: "
                   f"entries {last + 1}..{head.seq} were cut off (truncated tail)")
        return False
    if hashes.get(head.seq) != head.hash:
        report.add(head.seq, kind_if_bad,
                   f"entry {head.seq} is not the one {where} names (the chain was rewritten)")
        return False
    report.anchored_through = max(report.anchored_through, head.seq)
    return True


def _check_timestamp(data: bytes, root: Metadata[Root] | None, hashes: dict[int, str],
                     report: ChainReport) -> None:
    try:
        md = Metadata[Timestamp].from_bytes(data)
        if not isinstance(md.signed, Timestamp):
            raise ValueError(f"it holds {md.signed.type} metadata")
        if root is None:
            raise ValueError("no trusted root to check it with")
        root.verify_delegate(Timestamp.type, md)
    except Exception as exc:  # noqa: BLE001 - any failure means: not an anchor
        report.add(None, "bad-anchor", f"the timestamp metadata does not verify: {exc}")
        return
    head = audit_head_in(md.signed.unrecognized_fields)
    if head is None:
        report.notes.append(f"timestamp v{md.signed.version} carries no audit head")
        return
    report.timestamp_anchor = {"version": md.signed.version, **head.as_field()}
    _check_head(head, f"the signed timestamp v{md.signed.version}", hashes, report)


def _check_witness(witness: Mapping[str, Any], hashes: dict[int, str],
                   report: ChainReport) -> None:
    device = str(witness.get("device_id", "?"))
    try:
        signed = SignedHeartbeat.from_bytes(str(witness["heartbeat"]).encode(), "heartbeat")
        if signed.heartbeat.device_id != device:
            raise ValueError(f"the heartbeat is device {signed.heartbeat.device_id}'s")
        signed.verify(bytes.fromhex(str(witness["public_key"])))
        head = signed.heartbeat.audit_head
        if head is None:
            raise ValueError("the heartbeat names no audit head")
    except (AgentError, KeyError, ValueError) as exc:
        report.add(None, "bad-witness", f"witness of device {device} does not verify: {exc}")
        return
    report.witnesses += 1
    if _check_head(head, f"device {device}'s heartbeat of {signed.heartbeat.issued_at}",
                   hashes, report):
        report.witnessed_devices.append(device)
        report.witnessed_through = max(report.witnessed_through, head.seq)
