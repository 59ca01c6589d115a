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


class PolicyError(AgentError):
    """A group policy (TOML) is invalid; the message names the key and the reason."""
