"""The hub's audit-chain head as the signed timestamp metadata carries it.

The hub's audit log is a hash chain (hub/audit/). So that the hub alone cannot rewrite
or truncate it unnoticed, it puts the chain's head — the last entry's sequence number
and hash — into `timestamp.json` as an extra field (python-tuf keeps unknown fields as
`unrecognized_fields`; standard TUF clients ignore them), and each agent repeats the head
it read from its *verified* timestamp in its device-signed heartbeat. A head a device
signed is evidence the hub cannot forge: a chain that no longer holds that entry at that
sequence number was rewritten or cut.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, ValidationError

from agent.wire.validation import StrictModel

TIMESTAMP_FIELD = "meisitong_audit_head"
"""The key under `signed` in timestamp.json."""


class AuditHead(StrictModel):
    seq: int = Field(ge=1, le=2**62)
    hash: str = Field(pattern=r"^[0-9a-f]{64}$")

    def as_field(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def audit_head_in(unrecognized_fields: dict[str, Any]) -> AuditHead | None:
    """The head a timestamp's extra fields carry; None if absent or malformed (an old
    hub sets none; a malformed one is not something to vouch for)."""
    value = unrecognized_fields.get(TIMESTAMP_FIELD)
    if value is None:
        return None
    try:
        return AuditHead.model_validate(value)
    except ValidationError:
        return None
