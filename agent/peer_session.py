"""The agent's libtorrent session: fetch payloads from peers, then seed them a while.

What it guarantees:
- Peers first, hub last. A download announces to the hub's tracker and trades with other
  agents; the hub's HTTP web seed is added only once the download has received nothing
  for `web_seed_after` seconds (a stalled swarm, or none at all), so the hub's link
  carries what the swarm cannot. A swarm that is slow but moving is left alone: on a
  branch office the web seed would only compete for the same WAN link.
- Announces name the device (`device=` in the tracker URL), so the hub's tracker can
  answer with peers of the device's own site (hub/swarm/site_peers.py). Peer exchange (PEX) is
  off: the tracker decides who talks to whom, and in particular which few agents of a
  site learn the hub seeder's address. Local service discovery, when on, adds LAN peers,
  which are of the same site by construction.
- Corrupt data is caught and its sender dropped: libtorrent checks every piece against
  the torrent's hashes, and its smart-ban plugin (a default plugin, kept on here) bans
  the peer that sent the bad blocks. `DownloadResult` counts failed pieces and banned
  peers.
- Configured rate limits bind LAN and loopback peers too: a peer-class filter maps every
  address to libtorrent's global class, which the limits apply to (DESIGN §7).
- No DHT, UPnP or NAT-PMP; local service discovery (BEP 14) only when asked for.
  Outgoing connections, tracker announces included, leave from the listen address, so
  the tracker (which takes a peer's address from its connection, never from `ip=`)
  records where the agent really listens (on test machines: 127.0.0.x).
- Announces follow the tracker's interval: libtorrent's `min_announce_interval` floor is
  lowered from 300 s (agent/torrent_network.py).
- The torrent's own tracker and web seed (the hub writes them for standard clients) are
  ignored: the agent announces to `tracker_url` with its device id and adds the web seed
  on its own schedule (agent/torrent_network.py, `load_torrent_without_sources`).
- A payload already complete in `save_dir` (an agent restart) is recognised by
  libtorrent's check of the file and returned without downloading anything.
- A download returns only once every piece is on disk. libtorrent reports a torrent
  seeding as soon as its last piece passes its hash check, which it does from its write
  cache: the last pieces may not be written yet (on a loaded 2-core machine, hashing the
  file at that moment saw a mismatch in 7 of 15 fast 64 MiB downloads, and none in
  another run: it depends on the load; tests/bench/bench_false_mismatch.py). So
  `download()` asks libtorrent to flush the torrent's cache and waits for its
  `cache_flushed_alert` (`flush_timeout`, else DownloadError) before it returns.
- `download(..., recheck=True)` has libtorrent read the file again and check every piece,
  then fetches whatever no longer passes: for a file that does not match its signed hash
  although every piece passed, or one altered on disk. It removes the torrent and adds
  it again (libtorrent checks a file at add, as after a restart) rather than calling
  `force_recheck`: that keeps the peer list, whose peers were just disconnected and so
  are not called again for `min_reconnect_time` (60 s); in tests the download then sat
  at 99% until the web seed came.
- After finishing, a torrent is seeded for `seed_time` seconds, then removed from the
  session by `run()`, which must be running; its file is never deleted here. Removal is
  asynchronous in libtorrent: until its `torrent_removed_alert` arrives the torrent's
  files may still be open and written, so `holds_files()` still names it, and
  `remove()` waits for the alert. Delete a payload only when neither does.
- A download that times out, fails or is cancelled removes its torrent from the session
  but leaves the partial file, so a retry resumes after libtorrent re-checks it.

Status is polled every 0.2 s (`torrent_handle.status()` is a short synchronous call into
libtorrent's network thread, not I/O), and so is the alert queue in `run()`; nothing
waits inside libtorrent, so trio cancellation is always immediate.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import libtorrent as lt
import trio

from agent.errors import ConfigError, DownloadError
from agent.torrent_network import (
    all_peers_global_filter,
    load_torrent_without_sources,
    split_listen,
    tracker_settings,
)
from agent.wire.peer_ids import AGENT_PEER_ID_PREFIX, HUB_PEER_ID_PREFIX, with_query_parameter

log = logging.getLogger(__name__)


_POLL = 0.2
_REAP_EVERY = 1.0
_BLOCK = 16 * 1024
_FINISH_ALERT_WAIT = 2.0
_ALERT_WAIT_POLL = 0.02
_ALERTS = (
    lt.alert.category_t.error_notification
    | lt.alert.category_t.status_notification
    | lt.alert.category_t.storage_notification
    | lt.alert.category_t.tracker_notification
    | lt.alert.category_t.block_progress_notification  # to tell web-seed bytes apart
    | lt.alert.category_t.peer_notification  # peer_ban_alert
)


@dataclass(frozen=True)
class DownloadResult:
    """A finished download.

    `from_web_seed` counts the 16 KiB blocks libtorrent reports finished
    (block_finished_alert) from the web seed's address: the URL's host and port, resolved
    when the web seed is added, plus any address a web-seed connection is seen on in
    peer_info. A web seed's peer_info byte counter is no use for this: on a fast link the
    whole transfer begins and ends (the connection closes when the torrent finishes)
    between two polls. libtorrent does not report every block this way (the last blocks
    written after the last piece passed its hash check go unreported, more of them the
    busier the machine): those are counted by whom they were requested from
    (block_downloading_alert), when that was the web seed alone
    (`_Torrent.count_unreported`). `from_peers` is the torrent's payload download minus
    `from_web_seed`, so it also holds any redundant or failed bytes.

    `from_hub_seeder` counts, the same way, blocks from a peer whose id starts with
    HUB_PEER_ID_PREFIX; `from_peers` excludes it too.
    """

    path: Path
    total_downloaded: int
    from_web_seed: int
    from_peers: int
    seconds: float
    web_seed_added: bool
    from_hub_seeder: int = 0
    hash_failures: int = 0
    """Pieces that failed their hash check (and were fetched again)."""
    banned_peers: tuple[str, ...] = ()
    """"IP:PORT" of peers libtorrent banned for sending corrupt data."""
    info_hash_v1: str = ""

    @property
    def from_hub(self) -> int:
        """What the hub sent: its web seed and its seeder."""
        return self.from_web_seed + self.from_hub_seeder


@dataclass
class _Torrent:
    handle: Any
    info: Any
    name: str
    seed_until: float | None = None
    last_tracker_error: str = ""
    web_endpoints: set[tuple[str, int]] = field(default_factory=set)
    web_bytes: int = 0
    hub_seeder_bytes: int = 0
    hash_failures: int = 0
    banned: set[str] = field(default_factory=set)
    finished_alert_seen: bool = False
    cache_flushes: int = 0
    """cache_flushed_alerts seen: libtorrent wrote all it had cached for the torrent."""

    requested_from: dict[tuple[int, int], str] = field(default_factory=dict)
    """(piece, block) -> who it was requested from: "web", "hub", "peer", or "mixed"."""
    reported: set[tuple[int, int]] = field(default_factory=set)
    """Blocks a block_finished_alert was seen for."""

    def _source(self, endpoint: tuple[str, int], peer_id: bytes) -> str:
        if endpoint in self.web_endpoints:
            return "web"
        if peer_id.startswith(HUB_PEER_ID_PREFIX):
            return "hub"
        return "peer"

    def _size(self, piece: int, block: int) -> int:
        return max(0, min(_BLOCK, self.info.piece_size(piece) - block * _BLOCK))

    def note_request(
        self, endpoint: tuple[str, int], peer_id: bytes, piece: int, block: int
    ) -> None:
        """A block was requested (block_downloading_alert): remember from whom, for
        the blocks whose block_finished_alert never comes (see `count_unreported`)."""
        source = self._source(endpoint, peer_id)
        earlier = self.requested_from.setdefault((piece, block), source)
        if earlier != source:
            self.requested_from[(piece, block)] = "mixed"

    def count_block(
        self, endpoint: tuple[str, int], peer_id: bytes, piece: int, block: int
    ) -> None:
        self.reported.add((piece, block))
        source = self._source(endpoint, peer_id)
        if source == "web":
            self.web_bytes += self._size(piece, block)
        elif source == "hub":
            self.hub_seeder_bytes += self._size(piece, block)

    def count_unreported(self) -> None:
        """Count the finished torrent's blocks that no block_finished_alert reported by
        whom they were requested from, when that was only the web seed or only the hub's
        seeder; then forget the per-block records.

        libtorrent posts block_finished_alert when a block's disk write completes, and
        only while the torrent still has a piece picker. The picker is gone once the last
        piece passes its hash check, which can happen before the writes of the last
        blocks complete, so their alerts never come: on a loaded machine the disk lags
        further behind and more blocks go unreported (24 of 512 in an 8 MiB web-seed
        download with two CPU hogs). Requests are posted when sent, before any of that.
        """
        for key, source in self.requested_from.items():
            if key in self.reported:
                continue
            if source == "web":
                self.web_bytes += self._size(*key)
            elif source == "hub":
                self.hub_seeder_bytes += self._size(*key)
        self.requested_from.clear()
        self.reported.clear()


async def _web_seed_endpoints(url: str) -> set[tuple[str, int]]:
    """Where a web seed URL connects to, as libtorrent will report it in alerts."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        return {(str(ipaddress.ip_address(host)), port)}
    except ValueError:
        pass
    try:
        infos = await trio.socket.getaddrinfo(host, port, type=trio.socket.SOCK_STREAM)
    except OSError as exc:
        log.warning("web seed %s: cannot resolve %s (%s); its bytes will count as from peers",
                    url, host, exc)
        return set()
    return {(str(info[4][0]), port) for info in infos}


class PeerSession:
    """One libtorrent session per agent daemon; `run()` must run while it is used."""

    def __init__(
        self,
        listen: str,
        upload_limit: int = 0,
        download_limit: int = 0,
        local_discovery: bool = False,
        seed_time: float = 3600,
        device_id: str | None = None,
        flush_timeout: float = 120.0,
    ) -> None:
        ip, _port = split_listen(listen)
        if upload_limit < 0 or download_limit < 0 or seed_time < 0:
            raise ConfigError("rate limits and seed time must be >= 0 (0 = unlimited / none)")
        if flush_timeout <= 0:
            raise ConfigError("the disk flush timeout must be > 0 seconds")
        specific = ip not in ("0.0.0.0", "::")  # noqa: S104 - a test, not a bind
        settings: lt.settings_pack = {
            "listen_interfaces": listen,
            "outgoing_interfaces": ip if specific else "",
            "enable_dht": False,
            "enable_lsd": local_discovery,
            "enable_upnp": False,
            "enable_natpmp": False,
            # Keep connections to peers that became seeds. With libtorrent's default, an
            # agent drops a site peer that just finished as "uninteresting upload-only"
            # while its own last blocks are still requested elsewhere; in the
            # branch-office harness that left every non-gateway agent waiting on one piece
            # until the web seed (10 s later) delivered it: 2.8x the Kumar-Ross bound
            # against 1.4x with the connections kept (tests/bench/branch_office).
            "close_redundant_connections": False,
            # TCP only. uTP's LEDBAT yields to any competing flow, and on a site's WAN link
            # that is the site's own traffic; in the one full-size harness run with uTP on,
            # the gateways got less from the hub's seeder (tests/bench/branch_office).
            "enable_outgoing_utp": False,
            "enable_incoming_utp": False,
            "upload_rate_limit": upload_limit,
            "download_rate_limit": download_limit,
            "alert_mask": int(_ALERTS),
            "user_agent": "meisitong-agent",
            "peer_fingerprint": AGENT_PEER_ID_PREFIX.decode("ascii"),
            "stop_tracker_timeout": 1,
            # Room for a few seconds of block alerts at LAN speeds between two polls.
            "alert_queue_size": 20000,
        }
        settings.update(tracker_settings())  # type: ignore[typeddict-item]
        self._session: Any = lt.session(settings)
        self._session.set_peer_class_filter(all_peers_global_filter())
        self._seed_time = seed_time
        self._device_id = device_id
        self._torrents: dict[str, _Torrent] = {}
        self._by_handle: dict[Any, _Torrent] = {}
        self._closing: dict[str, Any] = {}
        """v1 -> handle of torrents removed from the session, not yet confirmed gone."""
        self._flush_timeout = flush_timeout
        self.listen = listen
        self._uploaded_by_removed = 0

    async def download(
        self,
        torrent_bytes: bytes,
        save_dir: Path,
        tracker_url: str,
        web_seed_url: str | None = None,
        web_seed_after: float = 10.0,
        timeout: float | None = None,
        on_progress: Callable[[float], None] | None = None,
        recheck: bool = False,
    ) -> DownloadResult:
        """Fetch the torrent's single file into `save_dir`; return when it is complete
        and on disk. With `recheck`, the file already in `save_dir` is checked again
        piece by piece (the torrent is removed and added again) and what fails is fetched
        again.

        Raises DownloadError if the torrent is invalid, libtorrent reports an error (disk
        full, unwritable directory), `timeout` seconds pass first, or the written file
        is not confirmed on disk within the flush timeout.
        """
        try:
            params, info = load_torrent_without_sources(torrent_bytes)
        except RuntimeError as exc:
            raise DownloadError(f"not a valid torrent: {exc}") from exc
        v1 = str(info.info_hashes().v1)
        name = f"{info.name()} ({v1})"
        save_dir = Path(save_dir)
        path = save_dir / info.name()
        started = trio.current_time()

        # Added again below, checked at add. (Adding it back while libtorrent still
        # removes it would fail as a duplicate.)
        again = recheck or (v1 not in self._torrents and not self._closed(v1))
        if again and not await self.remove(v1):
            raise DownloadError(f"{name}: libtorrent has not finished removing it; "
                                    "cannot add it again yet")
        torrent = self._torrents.get(v1)
        owner = torrent is None
        if torrent is None:
            save_dir.mkdir(parents=True, exist_ok=True)
            params.save_path = str(save_dir)
            params.flags = (
                params.flags & ~lt.torrent_flags.auto_managed & ~lt.torrent_flags.paused
            ) | lt.torrent_flags.disable_pex
            if self._device_id:
                tracker_url = with_query_parameter(tracker_url, "device", self._device_id)
            params.trackers = [tracker_url]
            torrent = _Torrent(self._session.add_torrent(params), info, name)
            self._torrents[v1] = torrent
            self._by_handle[torrent.handle] = torrent
        handle = torrent.handle
        if recheck:
            log.warning("%s: rechecking every piece of the file on disk", name)

        web_seed_added = False
        status: Any = None
        done = False
        received, last_progress = -1, started
        try:
            with trio.move_on_after(timeout if timeout is not None else float("inf")):
                while True:
                    status = handle.status()
                    if status.errc.value():
                        raise DownloadError(
                            f"{name}: libtorrent failed: {status.errc.message()} "
                            f"(file {status.error_file})"
                        )
                    if web_seed_added:
                        torrent.web_endpoints.update(
                            p.ip for p in handle.get_peer_info()
                            if p.connection_type == lt.peer_info.web_seed
                        )
                    if on_progress is not None:
                        on_progress(status.progress)
                    if status.is_seeding:
                        done = True
                        break
                    if status.total_payload_download > received:
                        received, last_progress = status.total_payload_download, trio.current_time()
                    if (
                        web_seed_url
                        and not web_seed_added
                        and trio.current_time() - last_progress >= web_seed_after
                    ):
                        log.info("%s: nothing received for %.0f s: adding web seed %s",
                                 name, web_seed_after, web_seed_url)
                        torrent.web_endpoints |= await _web_seed_endpoints(web_seed_url)
                        handle.add_url_seed(web_seed_url)
                        web_seed_added = True
                    await trio.sleep(_POLL)
        finally:
            if not done and owner:
                self._drop(v1)
        if not done:
            raise DownloadError(self._timeout_message(torrent, status, timeout, web_seed_url,
                                                      web_seed_added))
        await self._wait_on_disk(torrent)
        if torrent.seed_until is None:
            torrent.seed_until = trio.current_time() + self._seed_time
        if web_seed_added:
            handle.remove_url_seed(web_seed_url)
            # run() may not have counted the last blocks yet; they come before this alert.
            with trio.move_on_after(_FINISH_ALERT_WAIT):
                while not torrent.finished_alert_seen:
                    await trio.sleep(_POLL / 4)
        torrent.count_unreported()
        total = status.total_payload_download
        from_web = min(torrent.web_bytes, total)
        from_seeder = min(torrent.hub_seeder_bytes, total - from_web)
        result = DownloadResult(
            path=path,
            total_downloaded=total,
            from_web_seed=from_web,
            from_peers=total - from_web - from_seeder,
            seconds=trio.current_time() - started,
            web_seed_added=web_seed_added,
            from_hub_seeder=from_seeder,
            hash_failures=torrent.hash_failures,
            banned_peers=tuple(sorted(torrent.banned)),
            info_hash_v1=v1,
        )
        log.info(
            "%s: complete in %.1f s, %d bytes (%d from peers, %d from the hub's seeder, "
            "%d from the web seed); %d pieces failed their hash check, %d peers banned",
            name, result.seconds, total, result.from_peers, result.from_hub_seeder,
            result.from_web_seed, result.hash_failures, len(result.banned_peers),
        )
        return result

    def _timeout_message(
        self,
        torrent: _Torrent,
        status: Any,
        timeout: float | None,
        web_seed_url: str | None,
        web_seed_added: bool,
    ) -> str:
        if status is None:
            return f"{torrent.name}: not complete after {timeout} s; libtorrent gave no status"
        web = (
            "no web seed" if not web_seed_url
            else f"web seed {web_seed_url} {'added' if web_seed_added else 'not yet added'}"
        )
        tracker = (
            f"; last tracker error: {torrent.last_tracker_error}"
            if torrent.last_tracker_error else ""
        )
        return (
            f"{torrent.name}: not complete after {timeout} s: {status.progress:.1%} done "
            f"({status.total_done} bytes), state {status.state}, {status.num_peers} peers "
            f"connected ({status.num_seeds} seeds), {status.list_peers} peers known; "
            f"{web}{tracker}"
        )

    async def _wait_on_disk(self, torrent: _Torrent) -> None:
        """Return once libtorrent has written everything it had cached for `torrent`.

        Alerts are drained just before the request, so a flush counted afterwards was
        posted after it. (libtorrent also flushes by itself when a torrent finishes; if
        that alert lands between the drain and the request it is counted instead, which is
        as good: that flush too was queued after the last piece had passed.)"""
        self._drain_alerts()
        before = torrent.cache_flushes
        started = trio.current_time()
        torrent.handle.flush_cache()
        with trio.move_on_after(self._flush_timeout):
            while torrent.cache_flushes == before:
                await trio.sleep(_ALERT_WAIT_POLL)
                self._drain_alerts()
            log.debug("%s: on disk %.3f s after it was complete", torrent.name,
                      trio.current_time() - started)
            return
        raise DownloadError(
            f"{torrent.name}: complete, but libtorrent did not confirm it had written it to "
            f"disk within {self._flush_timeout:.0f} s (no cache_flushed_alert)"
        )

    def _drop(self, v1: str) -> None:
        torrent = self._torrents.pop(v1, None)
        if torrent is not None:
            self._uploaded_by_removed += torrent.handle.status().total_payload_upload
            self._by_handle.pop(torrent.handle, None)
            self._closing[v1] = torrent.handle
            self._session.remove_torrent(torrent.handle)

    def _closed(self, v1: str) -> bool:
        """Whether libtorrent is done with a removed torrent: its torrent_removed_alert
        came, or its handle no longer refers to a torrent (libtorrent keeps the torrent
        alive until its disk jobs are over; this covers an alert lost to a full queue)."""
        handle = self._closing.get(v1)
        if handle is not None and not handle.is_valid():
            del self._closing[v1]
            handle = None
        return handle is None

    async def remove(self, info_hash_v1: str, timeout: float = 30.0) -> bool:
        """Stop seeding a torrent and wait until libtorrent has closed its files (its
        torrent_removed_alert); True once it has, False if that takes over `timeout` s
        (its files may then still be in use). Its file is left where it is."""
        self._drop(info_hash_v1)
        with trio.move_on_after(timeout):
            while not self._closed(info_hash_v1):
                await trio.sleep(_ALERT_WAIT_POLL)
                self._drain_alerts()
            return True
        log.warning("%s: libtorrent has not confirmed its removal after %.0f s",
                    info_hash_v1, timeout)
        return False

    def uploaded_bytes(self) -> int:
        """Payload bytes this session has sent to peers, removed torrents included."""
        return self._uploaded_by_removed + sum(
            torrent.handle.status().total_payload_upload for torrent in self._torrents.values())

    def seeding(self) -> list[str]:
        """v1 info-hashes (hex) of the torrents this session holds."""
        return list(self._torrents)

    def holds_files(self) -> set[str]:
        """v1 info-hashes (hex) of the torrents whose files libtorrent may have open:
        those it holds and those removed whose removal it has not confirmed yet."""
        return set(self._torrents) | {v1 for v1 in list(self._closing) if not self._closed(v1)}

    def add_peer(self, info_hash_v1: str, ip: str, port: int) -> bool:
        """Point a torrent of this session at a peer found without the tracker (site
        gossip, for when the hub is down); False if the session holds no such torrent."""
        torrent = self._torrents.get(info_hash_v1)
        if torrent is None:
            return False
        torrent.handle.connect_peer((ip, port))
        return True

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Drain alerts (logging errors, remembering tracker errors for DownloadError
        messages) and remove torrents whose seed time is over, until cancelled."""
        task_status.started()
        next_reap = trio.current_time()
        while True:
            self._drain_alerts()
            now = trio.current_time()
            if now >= next_reap:
                next_reap = now + _REAP_EVERY
                for v1, torrent in list(self._torrents.items()):
                    if torrent.seed_until is not None and now >= torrent.seed_until:
                        log.info("%s: seed time over, no longer seeding", torrent.name)
                        self._drop(v1)
            await trio.sleep(_POLL)

    def _drain_alerts(self) -> None:
        for alert in self._session.pop_alerts():
            self._on_alert(alert)

    def _on_alert(self, alert: Any) -> None:
        if isinstance(alert, lt.block_downloading_alert):
            torrent = self._by_handle.get(alert.handle)
            if torrent is not None:
                torrent.note_request(
                    alert.endpoint, alert.pid.to_bytes(), alert.piece_index, alert.block_index
                )
            return
        if isinstance(alert, lt.block_finished_alert):
            torrent = self._by_handle.get(alert.handle)
            if torrent is not None:
                torrent.count_block(
                    alert.endpoint, alert.pid.to_bytes(), alert.piece_index, alert.block_index
                )
            return
        if isinstance(alert, lt.torrent_removed_alert):
            self._closing.pop(str(alert.info_hashes.v1), None)
        if isinstance(alert, lt.torrent_alert):
            torrent = self._by_handle.get(alert.handle)
            if torrent is not None and isinstance(alert, lt.cache_flushed_alert):
                torrent.cache_flushes += 1
            if torrent is not None and isinstance(alert, lt.hash_failed_alert):
                torrent.hash_failures += 1
            if torrent is not None and isinstance(alert, lt.peer_ban_alert):
                torrent.banned.add(f"{alert.endpoint[0]}:{alert.endpoint[1]}")
            if torrent is not None and isinstance(alert, lt.torrent_finished_alert):
                torrent.finished_alert_seen = True
            if torrent is not None and isinstance(alert, lt.tracker_error_alert):
                torrent.last_tracker_error = alert.message()
        if alert.category() & lt.alert.category_t.error_notification:
            log.warning("libtorrent: %s: %s", alert.what(), alert.message())
        else:
            log.debug("libtorrent: %s: %s", alert.what(), alert.message())

    def close(self) -> None:
        """Remove every torrent (files stay) and shut the session down; libtorrent tells
        the tracker we stopped, waiting at most 1 s."""
        for v1 in list(self._torrents):
            self._drop(v1)
        self._session = None
