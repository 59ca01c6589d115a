"""Debian's version ordering, from python-debian (`debian.debian_support.Version`: the
dpkg algorithm, epochs, `~` sorting before everything, `+debNuM`, `+bN`).

Parsing is cached: a fleet repeats the same few versions of each package thousands of
times, and so do the feeds' fixed versions.
"""

from __future__ import annotations

from functools import lru_cache

from debian.debian_support import Version


@lru_cache(maxsize=1 << 18)
def debian_version(text: str) -> Version:
    """Raises ValueError for text that is no Debian version."""
    return Version(text)


def is_debian_version(text: str) -> bool:
    try:
        debian_version(text)
    except ValueError:
        return False
    return bool(text) and text[0].isalnum()
