"""The hub's libtorrent session, which seeds every published payload.

What it guarantees:
- Its upload rate is bounded by `upload_limit` for EVERY peer, LAN and loopback included.
  libtorrent puts RFC 1918, link-local, ULA and loopback peers in its "local" peer class,
  which no rate limit applies to; a peer-class filter that maps all addresses to the
  global class closes that exemption (DESIGN §7).
- It finds peers only through the hub's own tracker: no DHT, no local service discovery,
  no UPnP or NAT-PMP port mapping (a hub server's ports are configured by its admin).
- Outgoing connections leave from the listen address, so a hub on 127.0.0.1 among agents
  on 127.0.0.x is seen by them (and by its tracker, which takes addresses from
  connections) as 127.0.0.1, as on a real network.
- It is in its swarms at every moment: it announces at the interval its tracker hands
  out, not libtorrent's 300 s `min_announce_interval` (agent/torrent_network.py), and the
  tracker forgets a peer only after three missed announces.
- Torrents are added in seed mode: the hub made these torrents from these very files, so
  it skips the full re-hash at start (minutes for a large payload store). That is still
  safe: in seed mode libtorrent checks each piece against its hash the first time a peer
  asks for it, and on a mismatch leaves seed mode and rechecks the whole file, so a
  corrupted payload is never served. A payload whose size does not match the torrent is
  refused at `add`.
- Torrents are not auto-managed, so libtorrent's active-seed limit never pauses one.
- Peer exchange (PEX) is off for its torrents, and its tracker URL carries the hub's
  secret `hub_key`, so the tracker knows which peer is the hub and can keep its address
  from all but a few agents per site (hub/swarm/site_peers.py); with PEX on, those agents
  would pass the address on to every peer they know.
  That secret never reaches a log, at any level: libtorrent's alert messages quote the
  tracker URL, so every message is logged with the secret replaced by `***`.
- It announces only to the hub's tracker with that secret, never to the tracker written
  in the torrent for standard clients (that one would list the hub as an anonymous peer),
  and ignores the torrent's web seed.
- Its peer id starts with HUB_PEER_ID_PREFIX, so agents can count what they received
  from the hub's seeder apart from what other agents sent them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import libtorrent as lt
import trio

from agent.torrent_network import (
    all_peers_global_filter,
    load_torrent_without_sources,
    split_listen,
    tracker_settings,
)
from agent.wire.peer_ids import HUB_PEER_ID_PREFIX, with_query_parameter
from hub.errors import HubConfigError, PublishError

log = logging.getLogger(__name__)

_ALERT_POLL = 0.25
_ALERTS = (
    lt.alert.category_t.error_notification
    | lt.alert.category_t.status_notification
    | lt.alert.category_t.storage_notification
    | lt.alert.category_t.tracker_notification
    | lt.alert.category_t.connect_notification  # who the hub trades with (DEBUG log)
)


@dataclass(frozen=True)
class SeedStats:
    """Upload counters of one seeded torrent since it was added to this session."""

    total_payload_upload: int
    num_peers: int


class HubSeeder:
    """Seeds payloads at a bounded rate; announce to `tracker_url` (the hub's tracker)."""

    def __init__(
        self,
        listen: str,
        upload_limit: int = 0,
        tracker_url: str | None = None,
        hub_key: str | None = None,
    ):
        ip, _port = split_listen(listen)
        specific = ip not in ("0.0.0.0", "::")  # noqa: S104 - a test, not a bind
        if upload_limit < 0:
            raise HubConfigError(f"upload limit {upload_limit}: must be >= 0 (0 = unlimited)")
        settings: lt.settings_pack = {
            "listen_interfaces": listen,
            "outgoing_interfaces": ip if specific else "",
            "enable_dht": False,
            "enable_lsd": False,
            "enable_upnp": False,
            "enable_natpmp": False,
            "upload_rate_limit": upload_limit,
            "alert_mask": int(_ALERTS),
            "user_agent": "meisitong-hub",
            "peer_fingerprint": HUB_PEER_ID_PREFIX.decode("ascii"),
            "stop_tracker_timeout": 1,
        }
        settings.update(tracker_settings())  # type: ignore[typeddict-item]
        self._session: Any = lt.session(settings)
        self._session.set_peer_class_filter(all_peers_global_filter())
        if tracker_url and hub_key:
            tracker_url = with_query_parameter(tracker_url, "hub", hub_key)
        self._tracker_url = tracker_url
        self._secrets = tuple(
            secret for secret in (hub_key, quote(hub_key or "", safe="")) if secret
        )
        self._torrents: dict[str, lt.torrent_handle] = {}
        self.listen = listen

    def add(self, torrent_bytes: bytes, payload_file: Path) -> str:
        """Start seeding `payload_file` as `torrent_bytes`; returns the v1 info-hash (hex).

        Adding a torrent already seeded is a no-op. Raises PublishError if the torrent is
        not valid or the file is missing or of the wrong size.

        Add torrents once the tracker answers: libtorrent announces at once, and a refused
        announce makes it back off for 15 s or more, during which agents do not learn of
        the hub (measured: a 3-agent swarm took 28 s instead of 12 s).
        """
        try:
            params, info = load_torrent_without_sources(torrent_bytes)
        except RuntimeError as exc:
            raise PublishError(f"torrent for {payload_file}: not a valid torrent: {exc}") from exc
        v1 = str(info.info_hashes().v1)
        if v1 in self._torrents:
            return v1
        payload_file = Path(payload_file)
        if info.num_files() != 1:
            raise PublishError(f"torrent {info.name()} ({v1}): not a single-file torrent")
        try:
            size = payload_file.stat().st_size
        except OSError as exc:
            raise PublishError(f"payload {payload_file}: cannot seed it: {exc}") from exc
        if size != info.total_size():
            raise PublishError(
                f"payload {payload_file}: {size} bytes, but torrent {info.name()} ({v1}) "
                f"describes {info.total_size()}"
            )
        params.save_path = str(payload_file.parent)
        if payload_file.name != info.name():
            params.renamed_files = {0: payload_file.name}
        params.flags = (
            params.flags & ~lt.torrent_flags.auto_managed & ~lt.torrent_flags.paused
        ) | lt.torrent_flags.seed_mode | lt.torrent_flags.disable_pex
        if self._tracker_url:
            params.trackers = [self._tracker_url]
        self._torrents[v1] = self._session.add_torrent(params)
        log.info("seeding %s (%s) from %s", info.name(), v1, payload_file)
        return v1

    def remove(self, info_hash_v1: str) -> None:
        """Stop seeding a torrent (its file stays). Unknown hashes are ignored."""
        handle = self._torrents.pop(info_hash_v1, None)
        if handle is not None:
            self._session.remove_torrent(handle)

    def stats(self) -> dict[str, SeedStats]:
        """Per v1 info-hash (hex): payload bytes uploaded since added, peers connected.

        Safe to call from a worker thread while the trio thread adds torrents: it
        iterates a snapshot of the table."""
        out = {}
        for v1, handle in list(self._torrents.items()):
            st = handle.status()
            out[v1] = SeedStats(st.total_payload_upload, st.num_peers)
        return out

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Drain libtorrent's alerts, logging problems, until cancelled.

        Alerts are polled (pop_alerts does not block) rather than waited for in a worker
        thread, so cancelling this task is immediate.
        """
        task_status.started()
        while True:
            for alert in self._session.pop_alerts():
                log_alert(log, alert, self._secrets)
            await trio.sleep(_ALERT_POLL)

    def close(self) -> None:
        """Stop seeding everything and shut the session down.

        Dropping the last reference runs libtorrent's shutdown, which tells the tracker
        that this peer stopped (waiting at most stop_tracker_timeout = 1 s)."""
        for v1 in list(self._torrents):
            self.remove(v1)
        self._session = None


def log_alert(logger: logging.Logger, alert: Any, secrets: tuple[str, ...] = ()) -> None:
    """Errors at WARNING (a torrent that cannot read its file, a tracker refusing us),
    everything else at DEBUG; each of `secrets` in the message replaced by `***`."""
    message = redact(str(alert.message()), secrets)
    if alert.category() & lt.alert.category_t.error_notification:
        logger.warning("libtorrent: %s: %s", alert.what(), message)
    else:
        logger.debug("libtorrent: %s: %s", alert.what(), message)


def redact(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text
