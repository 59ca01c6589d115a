"""`meisitong-agent enroll`: trust the hub's root only if it matches the token's hash.

The token pins root version 1 (`1.root.json`) as the admin's offline side recorded it
at `init`. Enrollment checks that file against the pin, then walks the hub's root chain
from it to the newest root (each rotation verified by the root before it, as TUF's
client does), so a token made before a root rotation still enrolls, and a hub whose
chain does not verify is refused before anything is trusted.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import socket
from collections.abc import Iterator

import trio

from agent.atomic_file import write_atomic
from agent.config import AgentConfig
from agent.device_identity import DeviceIdentity
from agent.errors import EnrollmentError, MetadataError
from agent.hub_client import HubClient
from agent.metadata_client import MetadataClient
from agent.state_dir import StateDir
from agent.wire.enrollment import EnrollmentToken, EnrollRequest


async def enroll(config: AgentConfig, hub_url: str, token_text: str) -> tuple[str, str]:
    """Returns (device id, status). Nothing is written unless the root hash matches."""
    token = EnrollmentToken.parse(token_text)
    client = HubClient(hub_url, config.hub.timeout)
    root = await client.fetch_initial_root()
    actual = hashlib.sha256(root).hexdigest()
    if actual != token.root_sha256:
        raise EnrollmentError(
            f"the root metadata served by {hub_url} has SHA-256 {actual}, but the token "
            f"expects {token.root_sha256}: wrong hub, or someone in between; nothing trusted"
        )
    state = StateDir(config.agent.state_dir)
    with _nothing_left_on_failure(state):
        return await _enroll_into(state, config, client, hub_url, token, root)


async def _enroll_into(state: StateDir, config: AgentConfig, client: HubClient, hub_url: str,
                       token: EnrollmentToken, root: bytes) -> tuple[str, str]:
    state.create()
    await trio.to_thread.run_sync(_walk_root_chain, state, hub_url, root)
    identity = DeviceIdentity.load_or_create(state.device_key)
    import base64

    request = EnrollRequest(
        token_secret=token.secret,
        device_id=identity.device_id,
        public_key=base64.b64encode(identity.public_key_raw).decode("ascii"),
        name=config.agent.name or socket.gethostname(),
        hostname=socket.gethostname(),
        group=config.agent.group,
        site=config.agent.site,
        labels=config.agent.labels,
    ).signed_with(identity.private_key)
    response = await client.enroll(request)
    write_atomic(state.trusted_root, root, mode=0o600)
    if response.certificate and response.ca_certificate:
        write_atomic(state.hub_ca_certificate, response.ca_certificate.encode(), mode=0o644)
        write_atomic(state.device_certificate, response.certificate.encode(), mode=0o644)
    state.write_enrollment(hub_url.rstrip("/"), identity.device_id, response.status)
    return identity.device_id, response.status


@contextlib.contextmanager
def _nothing_left_on_failure(state: StateDir) -> Iterator[None]:
    """A refused enrollment (bad token, hub down, chain that does not verify) removes
    what this attempt created: the device key, the metadata cache, the state directory
    itself when it was new. What an earlier enrollment left is never touched."""
    existed = {path: path.exists() for path in
               (state.root, state.device_key, state.metadata, state.targets)}
    try:
        yield
    except BaseException:
        if not existed[state.root]:
            shutil.rmtree(state.root, ignore_errors=True)
        else:
            if not existed[state.device_key]:
                state.device_key.unlink(missing_ok=True)
            for directory in (state.metadata, state.targets):
                if not existed[directory]:
                    shutil.rmtree(directory, ignore_errors=True)
        raise


def _walk_root_chain(state: StateDir, hub_url: str, pinned_root: bytes) -> None:
    """Refresh the hub's metadata from the pinned root (into the device's metadata
    cache): every later root must verify against the one before it."""
    try:
        MetadataClient(state.metadata, state.targets, hub_url, pinned_root).refresh()
    except MetadataError as exc:
        raise EnrollmentError(
            f"the root served by {hub_url} matches the token, but the hub's metadata does "
            f"not verify from it: {exc}; nothing trusted"
        ) from None
