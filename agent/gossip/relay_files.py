"""Serve this agent's trusted TUF metadata and cached targets to site peers.

With the hub unreachable, a peer asks for exactly the URLs ngclient would fetch from
the hub (`metadata/timestamp.json`, `metadata/N.root.json`, `metadata/V.ROLE.json`,
`targets/DIR/HASH.NAME`), and we answer from what our own ngclient persisted. We need
not be careful about *what* we serve (the asking agent verifies it with TUF), only about
*where* we read it: names are matched against strict patterns and never joined into a
path unchecked. Anything we do not hold is "404", which ngclient reads as "no newer
root" or a failed fetch, as it would from the hub.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from urllib import parse

_ROOT = re.compile(r"^metadata/(\d{1,9})\.root\.json$")
_VERSIONED = re.compile(r"^metadata/(\d{1,9})\.([A-Za-z0-9_%.-]{1,128})\.json$")
_TIMESTAMP = "metadata/timestamp.json"
_TARGET = re.compile(r"^targets/((?:[A-Za-z0-9_.+-]+/)*)([0-9a-f]{64})\.([A-Za-z0-9_.+-]{1,200})$")


class TrustedFiles:
    def __init__(self, metadata_dir: Path, targets_dir: Path) -> None:
        self.metadata_dir = Path(metadata_dir)
        self.targets_dir = Path(targets_dir)

    def read(self, path: str) -> bytes | None:
        """The bytes for a hub-relative URL path, or None if we do not hold them."""
        if ".." in path.split("/"):
            return None
        if path == _TIMESTAMP:
            return _read(self.metadata_dir / "timestamp.json")
        if match := _ROOT.match(path):
            return _read(self.metadata_dir / "root_history" / f"{int(match.group(1))}.root.json")
        if match := _VERSIONED.match(path):
            version, role = int(match.group(1)), match.group(2)
            if "/" in parse.unquote(role) or role.startswith("."):
                return None
            data = _read(self.metadata_dir / f"{role}.json")
            return data if data is not None and _version(data) == version else None
        if match := _TARGET.match(path):
            directory, digest, name = match.groups()
            # ngclient stores a target under its URL-quoted path, a single file name.
            data = _read(self.targets_dir / parse.quote(f"{directory}{name}", ""))
            if data is not None and hashlib.sha256(data).hexdigest() == digest:
                return data
        return None


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes() if path.is_file() else None
    except OSError:
        return None


def _version(data: bytes) -> int | None:
    try:
        version = json.loads(data)["signed"]["version"]
    except (ValueError, KeyError, TypeError):
        return None
    return version if isinstance(version, int) else None
