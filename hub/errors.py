"""Errors the hub raises, one hierarchy; the CLI prints their message and exits non-zero.

Over HTTP, hub/api/error_statuses.py says which of these (and of the agent's wire and
signature errors) are the request's fault, answered 4xx; every other error, a HubError
included, is the server's fault and answered 500, which agents retry.
"""

from __future__ import annotations


class HubError(Exception):
    """Base of everything the hub raises on purpose."""


class HubConfigError(HubError):
    """hub.toml or the hub directory is missing, unreadable or invalid."""


class HubNotInitializedError(HubError):
    """The hub directory has not been created with `meisitong-hub init`."""


class KeyMaterialError(HubError):
    """A signing key is missing, unreadable, or not the one the metadata expects."""


class RepositoryError(HubError):
    """The TUF repository is inconsistent or a signing step failed."""


class UnknownReleaseError(HubError):
    """No signed release has that name (and version)."""


class PublishError(HubError):
    """A payload or RELEASE.toml could not be published."""


class EnrollmentRefusedError(HubError):
    """A device's enrollment request was refused (bad token, malformed key)."""


class UnknownTokenError(HubError):
    """No enrollment token has that id (or it was already revoked)."""


class UnknownDeviceError(HubError):
    """A request named a device the hub has not enrolled."""


class TrackerRequestError(HubError):
    """A BitTorrent announce or scrape request is malformed."""


class TrackerRefusedError(TrackerRequestError):
    """A well-formed announce the tracker will not record: a swarm of no published
    release, or one past the tracker's bounds (swarms, peers per swarm or per address)."""


class CertificateAuthorityError(HubError):
    """The device certificate authority's key or certificate is missing or unusable."""


class RolloutError(HubError):
    """A rollout change was refused: bad stages or rules, a state that does not allow it,
    pilots that would never read the rollout. Nothing was published."""


class UnknownGroupError(HubError):
    """No enrolled device is in that group and no admin created it."""


class RootAnchorMismatchError(HubError):
    """The root served by this hub is not the one the admin's offline record names."""


class BodyTooLargeError(HubError):
    """A request body exceeds its route's limit (answered 413)."""


class InventoryBaseMissingError(HubError):
    """An inventory diff names a base (full record) the hub does not hold for that
    device (answered 409: the device sends a full record next)."""


class InventoryDigestMismatchError(HubError):
    """An inventory diff applied to its base does not give the package list its record
    claims (answered 422: the device sends a full record next)."""


class AuditQueryError(HubError):
    """An audit log query is invalid (a filter that is no instant, a bad limit)."""


class AdminAccountError(HubError):
    """A console admin account change was refused: a bad name, role or password, an
    account that exists already, or one that does not exist."""


class ComplianceInputError(HubError):
    """A compliance exception or report filter is invalid; the message names the field."""


class EvidenceError(HubError):
    """An evidence bundle cannot be written or read (not its verification findings)."""


class VulnFeedError(HubError):
    """A vulnerability feed file (OSV, Debian security tracker) is unreadable or invalid;
    the message names the file and the record. Nothing of that import was stored."""


class UnknownVulnerabilityError(HubError):
    """No imported feed record is about that vulnerability id."""


class ControlWindowRefusedError(HubError):
    """A device's control window (agent/wire/control_signals.py) is not one the hub keeps:
    no active rollout of that release for the device's group, the device already has it,
    a time out of bounds, overlapping a window already held, or too many windows."""
