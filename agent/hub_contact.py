"""What the agent knows of its hub, for `meisitong-agent status`: is it answering (or
since when not, and why), and where the metadata in use came from (the hub, or site
peers relaying it while the hub is down).

The daemon tells `HubContact` the outcome of each metadata refresh; it journals two
status entries as JSON, which `status` shows as text or as-is with `--json`:
- `hub_contact`: `{"reachable": bool, "since": T, "last_answer": T|null, "error": str}`
  (`since` is when the current state began: a hub down for hours says so, and a daemon
  restarted meanwhile keeps the first failure's time);
- `metadata_source`: `{"source": "hub"|"site peers", "peers": [...], "at": T}` for the
  last refresh that succeeded (a failed refresh leaves it: that metadata is still in use).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tuf.api import exceptions as tuf_errors

from agent.journal import Journal, utc_now

HUB_CONTACT_KEY = "hub_contact"
METADATA_SOURCE_KEY = "metadata_source"


@dataclass(frozen=True)
class RefreshSource:
    """Who served a successful refresh: no peers means the hub did."""

    peers: tuple[str, ...] = ()
    hub_error: str | None = None
    """Why the hub was passed over (set whenever peers served something)."""


class HubContact:
    def __init__(self, journal: Journal, clock: Callable[[], str] = utc_now) -> None:
        self.journal = journal
        self._clock = clock

    def refreshed(self, source: RefreshSource) -> None:
        at = self._clock()
        if source.peers:
            self.unreachable(source.hub_error or "the hub did not answer", at)
            entry: dict[str, Any] = {"source": "site peers", "peers": list(source.peers)}
        else:
            self.answered(at)
            entry = {"source": "hub", "peers": []}
        self.journal.set_status(METADATA_SOURCE_KEY, json.dumps({**entry, "at": at}))

    def refresh_failed(self, exc: BaseException, hub_error: str | None = None) -> None:
        """A refresh failed: the hub is unreachable if `hub_error` says so (the peer
        fetcher's verdict) or `exc` is a failure to get an answer at all; otherwise the
        hub answered, with something TUF refused."""
        why = hub_error or unreachable_reason(exc)
        if why is None:
            self.answered(self._clock())
        else:
            self.unreachable(why, self._clock())

    def answered(self, at: str | None = None) -> None:
        at = at or self._clock()
        self._write({"reachable": True, "since": self._since(True, at), "last_answer": at,
                     "error": ""})

    def unreachable(self, why: str, at: str | None = None) -> None:
        at = at or self._clock()
        last = self.current()
        self._write({"reachable": False, "since": self._since(False, at),
                     "last_answer": last.get("last_answer"), "error": why[:500]})

    def current(self) -> dict[str, Any]:
        value, _at = self.journal.status().get(HUB_CONTACT_KEY, ("", ""))
        try:
            current = json.loads(value) if value else {}
        except ValueError:
            return {}
        return current if isinstance(current, dict) else {}

    def _since(self, reachable: bool, at: str) -> str:
        last = self.current()
        if last.get("reachable") is reachable and isinstance(last.get("since"), str):
            return str(last["since"])
        return at

    def _write(self, entry: dict[str, Any]) -> None:
        self.journal.set_status(HUB_CONTACT_KEY, json.dumps(entry, sort_keys=True))


def unreachable_reason(exc: BaseException) -> str | None:
    """Why the hub gave no answer, if that is what a refresh's failure was: a download
    error that is neither an HTTP answer below 500 nor too much data (those are answers)."""
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return None
        if isinstance(seen, tuf_errors.DownloadHTTPError):
            return str(exc) if seen.status_code >= 500 else None
        if isinstance(seen, tuf_errors.DownloadLengthMismatchError):
            return None
        if isinstance(seen, tuf_errors.DownloadError):
            return str(exc)
        seen = seen.__cause__ or seen.__context__
    return None


def describe_hub(entry: dict[str, Any]) -> str:
    """One line for `status`."""
    if not entry:
        return "not contacted yet"
    if entry.get("reachable"):
        return f"reachable, last answered at {entry.get('last_answer')}"
    last = entry.get("last_answer")
    return (f"hub unreachable since {entry.get('since')} ({entry.get('error')})"
            + (f"; last answered at {last}" if last else ""))


def describe_source(entry: dict[str, Any]) -> str:
    if not entry:
        return "no metadata refreshed yet"
    if entry.get("source") == "hub":
        return f"the hub, at {entry.get('at')}"
    peers: Sequence[str] = entry.get("peers") or []
    return f"site peer {', '.join(peers)} (hub unreachable), at {entry.get('at')}"
