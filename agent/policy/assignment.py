"""The admin's group assignment of one device, signed by the offline release key as
target `assignments/DEVICE_ID.json`.

Why offline: the group decides which policy (windows, pause, blocklist) binds a device.
If the hub's online key could move devices between groups, a compromised hub could
move a server into a group without windows and reboot it in business hours.
"""

from __future__ import annotations

from pydantic import Field

from agent.errors import PolicyError
from agent.wire.canonical import canonical_json
from agent.wire.validation import NAME_PATTERN, StrictModel, parse_json_model


def assignment_target_path(device_id: str) -> str:
    return f"assignments/{device_id}.json"


class GroupAssignment(StrictModel):
    device_id: str = Field(pattern=r"^[0-9a-z-]{4,64}$")
    group: str = Field(pattern=NAME_PATTERN)

    def to_bytes(self) -> bytes:
        return canonical_json(self.model_dump(mode="json"))

    @classmethod
    def from_bytes(cls, data: bytes, source: str) -> GroupAssignment:
        return parse_json_model(cls, data, source, PolicyError)
