"""The .torrent a publish makes names the hub's web seed and tracker for standard
clients, outside the info dict, so the info-hashes do not depend on them."""

from __future__ import annotations

import os
from pathlib import Path

import libtorrent as lt

from hub.hub_dir import HubDir
from hub.hub_init import initialize_hub
from hub.releases.publisher import publish_release
from hub.swarm.torrent_maker import make_hybrid_torrent
from tests.fleet import tar_bytes

RELEASE = """name = "app"
version = "1.0.0"
severity = "important"
category = "application"
[install]
type = "file-tree"
root = "/opt/app"
"""


def test_web_seed_and_tracker_leave_the_info_hashes_unchanged(tmp_path: Path) -> None:
    payload = tmp_path / "payload.bin"
    payload.write_bytes(os.urandom(100_000))
    bare = make_hybrid_torrent(payload)
    named = make_hybrid_torrent(payload, web_seed="http://hub:8080/payloads/payload.bin",
                                tracker="http://hub:8080/announce")

    assert (named.info_hash_v1, named.info_hash_v2) == (bare.info_hash_v1, bare.info_hash_v2)
    decoded = lt.bdecode(named.torrent_bytes)
    assert decoded[b"url-list"] == b"http://hub:8080/payloads/payload.bin"
    assert decoded[b"announce"] == b"http://hub:8080/announce"
    assert decoded[b"info"] == lt.bdecode(bare.torrent_bytes)[b"info"]


def test_published_torrent_names_the_web_seed_and_tracker_at_the_public_url(
    tmp_path: Path,
) -> None:
    hub_dir = HubDir(tmp_path / "hub")
    initialize_hub(hub_dir, None, "127.0.0.1:8080", "https://updates.example.org:8443/",
                   "127.0.0.1:6881")
    payload = tmp_path / "app.tar"
    payload.write_bytes(tar_bytes({"VERSION": b"1.0.0"}))
    manifest = tmp_path / "RELEASE.toml"
    manifest.write_text(RELEASE)
    published = publish_release(hub_dir, manifest, payload)

    [torrent_file] = (hub_dir.targets / "releases/app/1.0.0").glob("*.app.tar.torrent")
    decoded = lt.bdecode(torrent_file.read_bytes())
    assert decoded[b"url-list"] == (
        b"https://updates.example.org:8443/payloads/releases/app/1.0.0/app.tar"
    )
    assert decoded[b"announce"] == b"https://updates.example.org:8443/announce"
    hashes = lt.torrent_info(torrent_file.read_bytes()).info_hashes()
    assert (str(hashes.v1), str(hashes.v2)) == (published.info_hash_v1, published.info_hash_v2)
