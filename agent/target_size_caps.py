"""How big each kind of target may be, checked against its signed length before download.

Why: python-tuf downloads a target up to the length its signed metadata gives, and that
length is whatever the signer chose. The hub's online rollout key signs rollout
documents, so a compromised hub could sign a 64 MiB one and every agent would download
and parse it. Each kind of file an agent fetches through TUF has a known shape, so it
gets a cap that fits that shape with room to grow; a target above its cap is refused
before a byte is fetched, naming the path, its signed length and the cap.

Payloads are not fetched here (BitTorrent and the web seed fetch them, checked against
the admin-signed length by `MetadataClient.verify_payload`).
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.errors import TargetTooLargeError

KIB = 1024
MIB = 1024 * KIB


@dataclass(frozen=True)
class SizeCap:
    kind: str
    max_bytes: int


ROLLOUT_CAP = SizeCap("rollout document", 1 * MIB)
"""A group's rollouts: tens of entries with their pilot lists fit in a few KiB."""
POLICY_CAP = SizeCap("group policy", 64 * KIB)
"""Windows, deadlines, blocklists of one group: a few KiB of TOML."""
ASSIGNMENT_CAP = SizeCap("group assignment", 4 * KIB)
"""One device id and one group name in JSON: under 200 bytes."""
TORRENT_CAP = SizeCap("torrent", 16 * MIB)
"""A hybrid torrent carries v1 piece hashes and v2 piece layers: about 0.1 % of the
payload at 256 KiB pieces, so 16 MiB covers payloads beyond 10 GiB."""
OTHER_CAP = SizeCap("small target", 1 * MIB)

_BY_PREFIX = (("rollouts/", ROLLOUT_CAP), ("policies/", POLICY_CAP),
              ("assignments/", ASSIGNMENT_CAP))


def size_cap(path: str) -> SizeCap:
    """The cap for the target at `path`, by its kind."""
    for prefix, cap in _BY_PREFIX:
        if path.startswith(prefix):
            return cap
    if path.endswith(".torrent"):
        return TORRENT_CAP
    return OTHER_CAP


def check_target_size(path: str, signed_length: int) -> None:
    """Refuse a target whose signed length exceeds the cap of its kind."""
    cap = size_cap(path)
    if signed_length > cap.max_bytes:
        raise TargetTooLargeError(
            f"target {path} is signed with length {signed_length} bytes, more than the "
            f"{cap.max_bytes} bytes a {cap.kind} may have: not downloaded"
        )
