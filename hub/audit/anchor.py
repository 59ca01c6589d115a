"""Putting the audit chain's head where the hub alone cannot rewrite it unnoticed.

The serving hub re-signs `timestamp.json` with the head (seq, hash) whenever it moved,
checked every `[audit] anchor_interval` seconds (hub/serve.py). Every agent keeps the
timestamp it verified and signs the head back in its heartbeats (hub/audit/witnesses.py);
`audit verify` checks both against the chain. The timestamp alone binds the hub's key
to a head at a time; the devices' signatures are what a hub holding that key cannot
forge.
"""

from __future__ import annotations

import logging

from agent.wire.audit_head import TIMESTAMP_FIELD, AuditHead
from hub.audit.chain import adopt_unchained, head
from hub.database import HubDatabase
from hub.hub_dir import HubDir
from hub.repository.tuf_repository import HubRepository

log = logging.getLogger(__name__)


def anchor_head(hub_dir: HubDir) -> AuditHead | None:
    """Chain an older hub's log if need be, and re-sign the timestamp with the head if
    it moved; the head anchored (None while the log is empty)."""
    database = HubDatabase(hub_dir.database)
    try:
        adopted = adopt_unchained(database)
        if adopted:
            log.info("chained %d audit entries written before the chain existed", adopted)
        current = head(database)
    finally:
        database.close()
    if current is None:
        return None
    HubRepository(hub_dir).set_timestamp_field(TIMESTAMP_FIELD, current.as_field())
    return current
