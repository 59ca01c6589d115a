"""The root hash an enrollment token pins, taken from the admin's offline side.

Why not hash the root on the server's disk: the hub server is the attacker we plan
for. One that swaps `root.json` (and `1.root.json`) before `token create` would get
tokens that make new devices trust its own root, and then install what it signs. So the
pin is the SHA-256 of root version 1 as `init` recorded it in offline.toml beside the
offline keys, or the hash the admin gives (`--root-sha256`, printed by `init`), and a
token is refused when the served `1.root.json` does not match it: the devices would
refuse that hub anyway.

Version 1, not the newest root: enrollment fetches `1.root.json`, checks it against the
pin, and the device then verifies every later root against the one before it (TUF's root
chain), so tokens keep working after a root rotation.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from hub.errors import HubConfigError, RootAnchorMismatchError
from hub.repository.offline_record import OfflineRecord, check_sha256
from hub.repository.tuf_repository import HubRepository


def pinned_root_sha256(repository: HubRepository, offline_keys_dir: Path | None = None,
                       given: str | None = None) -> str:
    """The hash a token may carry: `given`, else offline.toml's, checked against the
    served first root. Raises RootAnchorMismatchError naming both hashes."""
    if given is not None:
        pin = check_sha256(given.strip().lower(), "--root-sha256")
        source = "the hash given (--root-sha256)"
    else:
        directory = offline_keys_dir or repository.keys.offline_dir
        try:
            pin = OfflineRecord.load(directory).root_v1_sha256
        except HubConfigError as exc:
            raise HubConfigError(f"{exc}; or give the root hash `init` printed with "
                                 "--root-sha256 HEX") from None
        source = f"the admin's offline record {OfflineRecord.path(directory)}"
    served = hashlib.sha256(repository.root_v1_bytes()).hexdigest()
    if served != pin:
        raise RootAnchorMismatchError(
            f"the hub's {repository.hub_dir.metadata / '1.root.json'} has SHA-256 {served}, "
            f"but {source} is {pin}: the root on this server was replaced (or the hash is "
            "another hub's); no token created, devices would not trust this hub"
        )
    return pin
