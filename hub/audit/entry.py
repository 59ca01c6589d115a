"""One audit entry's hash and what its signature covers: the rules a writer and a
verifier must apply alike, so they live apart from both and touch no database.

An entry is (seq, at, actor, action, subject, detail, prev). Its hash is the SHA-256 of
the canonical JSON (agent/wire/canonical.py) of exactly those seven fields, `prev` being
the previous entry's hash (GENESIS_PREV for seq 1). Its signature is Ed25519 over the 32
raw bytes of that hash, by the hub's online timestamp key, which every verifier already
trusts from the TUF root (root.json lists it for the timestamp role).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from agent.wire.canonical import canonical_json

GENESIS_PREV = "0" * 64
"""The `prev` of the first entry."""

HASHED_FIELDS = ("seq", "at", "actor", "action", "subject", "detail", "prev")
CHAIN_FIELDS = (*HASHED_FIELDS, "hash", "key_id", "signature")
"""An exported entry: the hashed fields, its hash, and who signed it how."""

CHAIN_START_ACTION = "audit.chain-start"
"""The entry written when a hub first chains its log; its detail says which earlier
entries it adopted (written before the chain existed, so vouched for only from then)."""


def entry_hash(seq: int, at: str, actor: str, action: str, subject: str,
               detail: Any, prev: str) -> str:
    payload = {"seq": seq, "at": at, "actor": actor, "action": action, "subject": subject,
               "detail": detail, "prev": prev}
    return hashlib.sha256(canonical_json(payload)).hexdigest()


def hash_of(entry: dict[str, Any]) -> str:
    """The hash an exported entry's fields give (raises KeyError/TypeError if malformed)."""
    return entry_hash(*(entry[name] for name in HASHED_FIELDS))


def stored_detail(text: str) -> Any:
    """A stored detail as writer, exporter and verifier all read it: JSON, or (a row an
    older hub wrote oddly) the text itself, so adopting and exporting never fail on it."""
    try:
        return json.loads(text)
    except ValueError:
        return text
