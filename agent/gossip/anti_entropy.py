"""Scuttlebutt reconciliation, without I/O: what to send a peer, and how to take in
what it sent.

Every record is checked before it is stored (and so before it can be forwarded):
the origin's certificate must chain to the hub's CA and name the origin, the origin's
key must have signed the envelope, and a result must carry a device signature of that
same origin over a record with that same id, and a software inventory a device signature
of that origin (the hub checks its packages). The first record of an origin that fails
ends that origin's part of the message: taking later versions would advance the
digest past the hole and we would never ask anyone for the real record.

Who is to blame: a forged envelope or result is the sender's fault (an honest relay
checked it before storing it), but a refused *certificate* of another origin is not: it
may have expired in transit, or a holder of the device CA minted it to get honest relays
banned. Those records are dropped (`unverifiable`) without a strike. An origin's stored
certificate is replaced only by a longer-lived one for the same device, key and site
(`DeviceCertificates.kept`), or by the one the origin itself presented in our TLS
handshake: that one proves it holds the key, which a minted certificate does not (so a
renewed or re-enrolled device's new certificate replaces its old one).
"""

from __future__ import annotations

import base64
import binascii
import logging
from dataclasses import dataclass, field

from agent.errors import AgentError, CertificateRefusedError, GossipError
from agent.gossip.store import GossipStore
from agent.gossip.tls import DeviceCertificate, DeviceCertificates
from agent.wire.decoding import decode_json
from agent.wire.gossip import INVENTORY_KEY, DeltaMessage, GossipRecord, Inventory
from agent.wire.inventory import SOFTWARE_DIFF_KEY, SOFTWARE_FULL_KEY, SignedInventory
from agent.wire.result import SignedResult
from agent.wire.validation import parse_model

log = logging.getLogger(__name__)


@dataclass
class MergeOutcome:
    accepted: int = 0
    stale: int = 0
    refused: list[str] = field(default_factory=list)
    """Why each refused record was refused (one line each): the sender's fault."""
    unverifiable: list[str] = field(default_factory=list)
    """Records dropped for their origin's certificate, not the sender's fault."""


def check_record(
    record: GossipRecord, certificate_der: bytes, certificates: DeviceCertificates
) -> DeviceCertificate:
    """Raise an AgentError naming the problem unless `record` is genuine."""
    origin = certificates.verify(certificate_der)
    if origin.device_id != record.origin:
        raise CertificateRefusedError(
            f"record {record.origin} v{record.version} came with the certificate of "
            f"{origin.device_id}"
        )
    record.verify(origin.public_key_raw)
    source = f"gossip record {record.origin} v{record.version}"
    if record.kind == "result":
        signed = SignedResult.from_bytes(record.body.encode("utf-8"), source)
        if signed.record.device_id != record.origin or signed.record.record_id != record.key:
            raise GossipError(
                f"{source}: result {signed.record.record_id} of {signed.record.device_id} "
                f"does not belong under key {record.key} of {record.origin}"
            )
        signed.verify(origin.public_key_raw)
    elif record.kind == "software":
        software = SignedInventory.from_bytes(record.body.encode("utf-8"), source)
        expected = SOFTWARE_FULL_KEY if software.record.kind == "full" else SOFTWARE_DIFF_KEY
        if software.record.device_id != record.origin or record.key != expected:
            raise GossipError(
                f"{source}: {software.record.kind} inventory of {software.record.device_id} "
                f"does not belong under key {record.key} of {record.origin}")
        software.verify(origin.public_key_raw)
    else:
        inventory = parse_model(Inventory, decode_json(record.body, source), source)
        if record.key != INVENTORY_KEY:
            raise GossipError(f"{source}: inventory under key {record.key!r}")
        if inventory.site != origin.site:
            raise CertificateRefusedError(
                f"{source}: inventory for site {inventory.site!r}, but the certificate "
                f"says site {origin.site!r}"
            )
    return origin


def delta_for(store: GossipStore, their_digest: dict[str, int], limit: int) -> DeltaMessage:
    """The records the holder of `their_digest` lacks, with their origins' certificates."""
    records = store.newer_than(their_digest, limit)
    certificates = {}
    for origin in {record.origin for record in records}:
        der = store.certificate(origin)
        if der is not None:
            certificates[origin] = base64.b64encode(der).decode("ascii")
    return DeltaMessage(records=records, certificates=certificates)


def merge_delta(
    store: GossipStore, delta: DeltaMessage, certificates: DeviceCertificates, sender: str,
    sender_device: str = "", sender_certificate: bytes = b"",
) -> MergeOutcome:
    """Check and store what `sender` (device `sender_device`, seen in TLS with
    `sender_certificate`) sent."""
    outcome = MergeOutcome()
    by_origin: dict[str, list[GossipRecord]] = {}
    for record in delta.records:
        by_origin.setdefault(record.origin, []).append(record)
    for origin, records in by_origin.items():
        try:
            offered = base64.b64decode(delta.certificates.get(origin, ""), validate=True)
        except (binascii.Error, ValueError):
            offered = b""
        der = certificates.kept(store.certificate(origin), offered) if offered else b""
        if origin == sender_device and sender_certificate:
            der = sender_certificate
        for index, record in enumerate(sorted(records, key=lambda r: r.version)):
            if record.version <= store.version_of(record.origin, record.key):
                outcome.stale += 1
                continue
            try:
                if not der:
                    raise GossipError(f"record {origin} v{record.version}: no certificate sent")
                check_record(record, der, certificates)
            except AgentError as exc:
                dropped = len(records) - index
                line = f"{exc} ({dropped} record(s) of {origin} dropped)"
                blameless = isinstance(exc, CertificateRefusedError) and origin != sender_device
                (outcome.unverifiable if blameless else outcome.refused).append(line)
                log.warning("gossip from %s: dropped %d record(s) of %s: %s",
                            sender, dropped, origin, exc)
                break
            if store.put(record, der):
                outcome.accepted += 1
            else:
                outcome.stale += 1
    return outcome
