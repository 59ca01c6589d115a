"""Errors the agent raises, one hierarchy so callers catch the level they can act on.

Every message names what was wrong and where (file, key, URL, path), so an operator
can act on it without reading the code.
"""

from __future__ import annotations


class AgentError(Exception):
    """Base of everything the agent raises on purpose."""


class ConfigError(AgentError):
    """agent.toml (or another local file) is missing, unreadable or invalid."""


class WireFormatError(AgentError):
    """A record, spec or message from outside does not match its format."""


class SignatureError(AgentError):
    """A signature does not verify against the key it must come from."""


class EnrollmentError(AgentError):
    """Enrolling at the hub failed (bad token, root hash mismatch, hub refused)."""


class MetadataError(AgentError):
    """TUF metadata could not be refreshed or verified; nothing may be installed."""


class TargetNotFoundError(MetadataError):
    """The signed metadata lists no such target."""


class TargetTooLargeError(MetadataError):
    """A target's signed length is above the cap for its kind; it was not downloaded."""


class DownloadError(AgentError):
    """A payload could not be fetched (no peers, no web seed, timeout)."""


class PayloadVerificationError(AgentError):
    """A downloaded payload does not match the length and hashes its signed target gives."""


class UnsafeArchiveError(AgentError):
    """A payload archive holds a member that would escape or subvert its install root."""


class InstallError(AgentError):
    """An installer failed to apply a payload."""


class RevertError(AgentError):
    """Restoring the pre-install state failed; the device needs an admin."""


class SnapshotError(AgentError):
    """A snapshot could not be taken or restored."""


class HealthCheckError(AgentError):
    """A health check is misconfigured (not: a check that ran and failed)."""


class DowngradeRefusedError(AgentError):
    """A release is older than what is installed and is not signed as a rollback release."""


class GossipError(AgentError):
    """A site peer, its certificate or a record it sent was refused (not our failure)."""


class CertificateRefusedError(GossipError):
    """A device certificate does not chain to the hub's CA, is not valid now, or does not
    fit the record it came with. A relay is not to blame for its origin's certificate."""


class DiskSpaceError(AgentError):
    """Not enough free space to snapshot and install; checked before anything changes."""


class ReadinessError(AgentError):
    """The facts a release's requirements ask about could not be read (dpkg-query
    failed): the device is not known to be ready, nothing changed."""


class PolicyError(AgentError):
    """A group policy (TOML) is invalid; the message names the key and the reason."""


class JournalDetailError(AgentError):
    """A deployment's journaled detail is not what this version can act on."""


class AlreadyRunningError(AgentError):
    """Another daemon holds this directory (agent/instance_lock.py)."""


class ListenAddressError(AgentError):
    """A daemon could not listen on a configured address (agent/listen_address.py)."""


class DeliveryError(AgentError):
    """The hub could not be reached or failed (5xx, 408, 429); the record stays in the
    outbox and is sent again later."""


class RecordRefusedError(AgentError):
    """The hub refused the record itself (a 4xx: malformed, bad signature, unknown
    device); retrying won't help."""


class LeaseUnavailableError(AgentError):
    """The hub could not be asked for a lease (unreachable, failing): no lease, so wait."""


class HubUnreachableError(AgentError):
    """Handing relayed results to the hub failed (unreachable, an error status, an answer
    not in the format): they stay in the gossip store for the next pass."""


class MalformedFrameError(GossipError):
    """The peer sent a frame over the limit, or a message that is not a bounded JSON
    object: a protocol fault, not a network one."""


class InventoryError(AgentError):
    """The device's inventory could not be collected (the probe failed or printed
    something not its format): no record goes out, the next look tries again."""


class IllegalTransitionError(RuntimeError):
    """A bug: code tried a transition the lifecycle table does not allow. Deliberately
    not an AgentError, so no handler of the agent's own errors swallows it."""
