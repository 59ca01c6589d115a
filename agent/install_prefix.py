"""Where a release's absolute paths land on this endpoint.

Install specs and health checks name absolute endpoint paths (`/opt/app`). A real
endpoint's prefix is `/`; tests, the demo and containers use a sandbox directory, and
every such path is placed beneath it. One class does the placing so no caller joins
paths by hand and none can be talked out of the prefix with `..`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from agent.errors import WireFormatError

ROOT_PLACEHOLDER = "{root}"
"""Replaced in a command health check's argv items by the prefix (no trailing slash)."""


class InstallPrefix:
    """An install prefix: `/` on an endpoint, a sandbox directory elsewhere."""

    def __init__(self, path: Path | str) -> None:
        path = Path(path)
        if not path.is_absolute():
            raise WireFormatError(f"install prefix must be an absolute path, got {str(path)!r}")
        # Normalised lexically, not resolved: a prefix that is itself a symlink is fine.
        self.path = Path(os.path.normpath(path))

    def __repr__(self) -> str:
        return f"InstallPrefix({str(self.path)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, InstallPrefix) and other.path == self.path

    def __hash__(self) -> int:
        return hash(self.path)

    @property
    def root_text(self) -> str:
        """What `{root}` becomes: the prefix without a trailing slash, `""` for `/`."""
        text = str(self.path)
        return "" if text == "/" else text.rstrip("/")

    def place(self, absolute_path: str) -> Path:
        """`absolute_path` (an endpoint path from a spec) as it lies under this prefix.

        Raises WireFormatError for a relative path or one with a `..` component: specs are
        validated when parsed, but this is the last point before the disk, so it checks again.
        """
        if not absolute_path.startswith("/"):
            raise WireFormatError(f"expected an absolute endpoint path, got {absolute_path!r}")
        parts = [part for part in PurePosixPath(absolute_path).parts[1:] if part != "."]
        if ".." in parts:
            raise WireFormatError(f"endpoint path must not contain '..', got {absolute_path!r}")
        return self.path.joinpath(*parts)

    def expand_argv(self, argv: Sequence[str]) -> list[str]:
        """argv with every `{root}` replaced by the prefix (so `{root}/opt/app` works)."""
        return [item.replace(ROOT_PLACEHOLDER, self.root_text) for item in argv]

    def environment(self) -> dict[str, str]:
        """Variables every program the agent runs for a release gets."""
        return {"MEISITONG_ROOT": str(self.path)}
