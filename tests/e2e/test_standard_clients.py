"""Standard clients, not built from this project's code, against a real hub.

The hub runs as real processes through the real commands (`meisitong-hub init`,
`publish`, `rollout start`, `policy set`, `serve`) on 127.0.0.1.

- TUF: tuf-js (npm; not python-tuf, which the agent uses) starts from the hub's root.json
  and refreshes from the hub with consistent snapshots on, and downloads every target the
  signed metadata lists, payloads included, from the path the specification gives it
  (`DIR/HASH.NAME`); then it follows the hub to a second release from the metadata it
  kept. Needs node and `make js-tools` (tuf-js in build/tuf-js).
- BitTorrent: Debian's qbittorrent-nox (qBittorrent 4.5 on libtorrent 2.0) on 127.0.0.9,
  given the .torrent exactly as the hub signed it except for one key outside the info
  dict (so the info-hashes are the same, which is checked): without its `url-list` it must
  get the payload from the hub's swarm through the hub's tracker; without its `announce`
  from the hub's web seed alone. The payload's SHA-256 is checked against the release,
  and the hub's own counters say which way the bytes went.
- What older clients do with a hybrid torrent, pinned so the README stays true: aria2
  1.36 reads it under a wrong info-hash (so it joins no swarm) and finishes from the web
  seed of the torrent exactly as signed; Transmission 3.00 refuses it for the v2 file
  tree's empty key.

Each test skips, saying why, when its client is not installed (`make test` installs them
on Debian when run as root).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import libtorrent as lt
import pytest

from agent.wire.audit_head import TIMESTAMP_FIELD
from hub.repository.metadata_signing import load_state
from hub.swarm.torrent_maker import make_hybrid_torrent
from tests.e2e import _qbittorrent
from tests.processes import BIN_HUB, Fleet, free_port, reachable, wait_for

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
TUF_JS_SCRIPT = Path(__file__).with_name("tuf_js_client.cjs")
TUF_JS_MODULES = REPO / "build" / "tuf-js" / "node_modules"
HUB = "127.0.0.1"
QBITTORRENT = "127.0.0.9"
POLICY = """timezone = "UTC"
[[windows]]
name = "nights"
when = "Mon-Fri 01:00-05:00"
"""


def release_toml(version: str) -> str:
    return (f'name = "app"\nversion = "{version}"\nseverity = "important"\n'
            'category = "application"\n[install]\ntype = "file-tree"\nroot = "/opt/app"\n')


@dataclass
class Hub:
    fleet: Fleet
    url: str

    def publish(self, version: str, size: int = 4 << 20) -> dict[str, Any]:
        """Publish app VERSION (a tar of about `size` random bytes) and roll it out."""
        workdir = self.fleet.workdir
        payload = workdir / f"app-{version}.tar"
        data = workdir / "data.bin"
        data.write_bytes(os.urandom(size))
        with tarfile.open(payload, "w") as archive:
            archive.add(data, "data.bin")
        release = workdir / f"RELEASE-{version}.toml"
        release.write_text(release_toml(version))
        published: dict[str, Any] = json.loads(
            self.fleet.command(BIN_HUB, "publish", str(release), str(payload), "--json").stdout
        )
        self.fleet.command(BIN_HUB, "rollout", "start", f"app@{version}", "--group", "lab",
                           "--new-group")
        published["payload"] = payload
        return published

    def signed_targets(self) -> dict[str, tuple[int, str]]:
        """Every target the hub's signed metadata lists: path -> (length, sha256)."""
        state = load_state(self.fleet.hub_dir / "repository" / "metadata")
        listed = {**state.targets.signed.targets, **state.rollout.signed.targets}
        return {path: (t.length, t.hashes["sha256"]) for path, t in listed.items()}

    def torrent(self, published: dict[str, Any]) -> bytes:
        targets = self.fleet.hub_dir / "repository" / "targets"
        digest = self.signed_targets()[published["torrent_target"]][1]
        directory, _, name = published["torrent_target"].rpartition("/")
        return (targets / directory / f"{digest}.{name}").read_bytes()

    def bytes_sent(self, target: str) -> dict[str, int]:
        [release] = [r for r in self.fleet.hub_status()["releases"] if r["release"] == target]
        return dict(release["hub_bytes_sent"])


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    port = free_port(HUB)
    fleet = Fleet(tmp_path, tmp_path / "hub", f"http://{HUB}:{port}")
    try:
        fleet.command(BIN_HUB, "init", "--listen", f"{HUB}:{port}",
                      "--seed-listen", f"{HUB}:{free_port(HUB)}")
        fleet.start("hub", BIN_HUB, "serve", "--dir", str(fleet.hub_dir))
        wait_for(lambda: reachable(HUB, port), 30, "the hub to listen")
        yield Hub(fleet, fleet.hub_url)
    finally:
        fleet.stop_all()


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def without(torrent: bytes, key: bytes) -> bytes:
    """The torrent with one top-level key (outside the info dict) removed."""
    decoded = lt.bdecode(torrent)
    assert key in decoded, f"the hub's torrent has no {key!r}"
    del decoded[key]
    return bytes(lt.bencode(decoded))


# -- TUF ---------------------------------------------------------------------------


def run_tuf_js(hub: Hub, workdir: Path, targets: list[str]) -> dict[str, Any]:
    request = workdir.with_suffix(".request.json")
    request.write_text(json.dumps({
        "metadataBaseUrl": f"{hub.url}/metadata/",
        "targetBaseUrl": f"{hub.url}/targets/",
        "trustedRoot": str(hub.fleet.hub_dir / "repository" / "metadata" / "1.root.json"),
        "workDir": str(workdir),
        "targets": targets,
    }))
    done = subprocess.run(
        ["node", str(TUF_JS_SCRIPT), str(request)], capture_output=True, text=True,
        timeout=60, env={**os.environ, "NODE_PATH": str(TUF_JS_MODULES)},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
@pytest.mark.skipif(not (TUF_JS_MODULES / "tuf-js").is_dir(),
                    reason="tuf-js is not installed in build/tuf-js (run `make js-tools`)")
def test_tuf_js_finds_every_target_payloads_included_and_follows_the_hub(
    hub: Hub, tmp_path: Path
) -> None:
    first = hub.publish("1.0.0")
    (tmp_path / "lab.toml").write_text(POLICY)
    hub.fleet.command(BIN_HUB, "policy", "set", "lab", str(tmp_path / "lab.toml"))
    signed = hub.signed_targets()
    assert {first["target"], first["torrent_target"], "rollouts/lab.json",
            "policies/lab.toml"} <= set(signed)

    client = tmp_path / "tuf-js"
    answer = run_tuf_js(hub, client, sorted(signed))
    got = {path: (t["length"], t["sha256"]) for path, t in answer["targets"].items()}
    assert got == signed
    assert got[first["target"]][1] == sha256_file(first["payload"])
    # ...from a timestamp carrying the audit head in an extra field (hub/audit/anchor.py),
    # which every re-signing since `serve` started (publish, policy set) kept.
    served = json.loads((hub.fleet.hub_dir / "repository" / "metadata" / "timestamp.json")
                        .read_text())
    assert set(served["signed"][TIMESTAMP_FIELD]) == {"seq", "hash"}

    # The hub moves on (new targets, snapshot and timestamp versions); the client follows
    # from the metadata it trusted in the first run.
    second = hub.publish("1.1.0")
    signed = hub.signed_targets()
    answer = run_tuf_js(hub, client, [second["target"], second["torrent_target"],
                                      "rollouts/lab.json"])
    for path, target in answer["targets"].items():
        assert (target["length"], target["sha256"]) == signed[path], path
    assert answer["targets"][second["target"]]["sha256"] == sha256_file(second["payload"])
    print(f"tuf-js {answer['tufJsVersion']} on node {answer['node']}")


# -- BitTorrent --------------------------------------------------------------------

needs_qbittorrent = pytest.mark.skipif(
    not _qbittorrent.installed(),
    reason="qbittorrent-nox is not installed (Debian: apt-get install qbittorrent-nox)",
)


def download_with_qbittorrent(workdir: Path, torrent: bytes, published: dict[str, Any]
                              ) -> tuple[str, Path]:
    """Let a stock qBittorrent download `torrent`; returns its version and the file."""
    with _qbittorrent.QBittorrent(workdir, QBITTORRENT) as client:
        client.add_torrent(torrent)
        done = client.wait_complete(timeout=40)
        assert (done["infohash_v1"], done["infohash_v2"]) == (
            published["info_hash_v1"], published["info_hash_v2"]
        ), "the same swarm as the hub's: dropping a key outside the info dict changes no hash"
        return client.version, client.save_dir / Path(published["target"]).name


@needs_qbittorrent
def test_qbittorrent_joins_the_hub_swarm_and_downloads_the_payload(
    hub: Hub, tmp_path: Path
) -> None:
    published = hub.publish("1.0.0")
    swarm_only = without(hub.torrent(published), b"url-list")

    version, file = download_with_qbittorrent(tmp_path / "qbittorrent", swarm_only, published)

    assert sha256_file(file) == published["sha256"]
    sent = wait_for(lambda: (s := hub.bytes_sent(published["target"]))["seeder"]
                    >= published["length"] and s, 15, "the hub to count its seeder's bytes")
    assert sent["web_seed"] == 0, "every byte came through the swarm"
    print(f"qBittorrent {version}: {published['length']} B from the hub's seeder")


@needs_qbittorrent
def test_qbittorrent_finishes_from_the_hub_web_seed_alone(hub: Hub, tmp_path: Path) -> None:
    published = hub.publish("1.0.0")
    web_seed_only = without(hub.torrent(published), b"announce")

    version, file = download_with_qbittorrent(tmp_path / "qbittorrent", web_seed_only,
                                              published)

    assert sha256_file(file) == published["sha256"]
    sent = wait_for(lambda: (s := hub.bytes_sent(published["target"]))["web_seed"]
                    >= published["length"] and s, 15, "the hub to count its web seed's bytes")
    assert sent["seeder"] == 0, "no tracker, so no swarm: every byte over HTTP"
    print(f"qBittorrent {version}: {sent['web_seed']} B from the hub's web seed")



# aria2 1.36 (Debian bookworm's) loads a hybrid torrent but drops the empty key of the v2
# file tree ({"NAME": {"": {...}}} becomes {"NAME": {}}) and hashes the info dict as it
# re-encodes it: its info-hash is not the torrent's, so it announces a swarm nobody is
# in. Its v1 piece hashes are intact, so it can still finish from the hub's web seed.

needs_aria2 = pytest.mark.skipif(shutil.which("aria2c") is None,
                                 reason="aria2c is not installed (Debian: apt-get install aria2)")
ARIA2 = "127.0.0.10"


def aria2_version() -> str:
    done = subprocess.run(["aria2c", "--version"], capture_output=True, text=True, timeout=10)
    return done.stdout.split("\n", 1)[0].removeprefix("aria2 version ").strip()


@needs_aria2
def test_aria2_1_36_reads_a_hybrid_torrent_under_the_wrong_info_hash(tmp_path: Path) -> None:
    if not aria2_version().startswith("1.36."):
        pytest.skip(f"pins aria2 1.36's behaviour; this is aria2 {aria2_version()}")
    payload = tmp_path / "payload.bin"
    payload.write_bytes(os.urandom(100_000))
    made = make_hybrid_torrent(payload)
    torrent = tmp_path / "payload.torrent"
    torrent.write_bytes(made.torrent_bytes)
    shown = subprocess.run(["aria2c", "--show-files", str(torrent)], capture_output=True,
                           text=True, timeout=10).stdout
    [line] = [line for line in shown.splitlines() if line.startswith("Info Hash:")]
    info = lt.bdecode(made.torrent_bytes)[b"info"]
    mangled = {**info, b"file tree": {name: {} for name in info[b"file tree"]}}
    assert line.split(":", 1)[1].strip() == hashlib.sha1(lt.bencode(mangled)).hexdigest()
    assert line.split(":", 1)[1].strip() != made.info_hash_v1


@needs_aria2
def test_aria2_finishes_from_the_hub_web_seed_of_the_published_torrent(
    hub: Hub, tmp_path: Path
) -> None:
    published = hub.publish("1.0.0")
    workdir = tmp_path / "aria2"
    workdir.mkdir()
    (workdir / "payload.torrent").write_bytes(hub.torrent(published))  # exactly as signed
    done = subprocess.run(
        ["aria2c", "--seed-time=0", "--enable-dht=false", "--enable-dht6=false",
         "--bt-enable-lpd=false", "--enable-peer-exchange=false", f"--interface={ARIA2}",
         f"--listen-port={free_port(ARIA2)}", "--summary-interval=0",
         "--console-log-level=warn", "--bt-stop-timeout=40", f"--dir={workdir / 'downloads'}",
         f"--log={workdir / 'aria2.log'}", "--log-level=info", str(workdir / "payload.torrent")],
        capture_output=True, text=True, timeout=50,
    )
    assert done.returncode == 0, (workdir / "aria2.log").read_text(errors="replace")[-4000:]

    file = workdir / "downloads" / Path(published["target"]).name
    assert sha256_file(file) == published["sha256"]
    sent = wait_for(lambda: (s := hub.bytes_sent(published["target"]))["web_seed"]
                    >= published["length"] and s, 15, "the hub to count its web seed's bytes")
    assert sent["seeder"] == 0, "aria2 is in a swarm of its own: every byte over HTTP"
    print(f"aria2 {aria2_version()}: {sent['web_seed']} B from the hub's web seed")


@pytest.mark.skipif(shutil.which("transmission-show") is None,
                    reason="transmission-show is not installed (Debian: transmission-cli)")
def test_transmission_3_refuses_a_hybrid_torrent_for_its_empty_key(tmp_path: Path) -> None:
    version = subprocess.run(["transmission-show", "--version"], capture_output=True,
                             text=True, timeout=10)
    if " 3.00 " not in (version.stdout + version.stderr):
        pytest.skip("pins Transmission 3.00's behaviour (4.0 reads hybrid torrents)")
    payload = tmp_path / "payload.bin"
    payload.write_bytes(os.urandom(100_000))
    decoded = lt.bdecode(make_hybrid_torrent(payload).torrent_bytes)
    hybrid = tmp_path / "hybrid.torrent"
    hybrid.write_bytes(lt.bencode(decoded))
    # The same torrent with the file tree's empty key renamed: no longer valid BEP 52, but
    # it shows that the empty key, and nothing else v2 adds, is what Transmission 3 refuses.
    info = decoded[b"info"]
    renamed = tmp_path / "renamed.torrent"
    renamed.write_bytes(lt.bencode({**decoded, b"info": {**info, b"file tree": {
        name: {b"x": entry[b""]} for name, entry in info[b"file tree"].items()}}}))

    def shown(torrent: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["transmission-show", str(torrent)], capture_output=True,
                              text=True, timeout=10)

    refused = shown(hybrid)
    assert refused.returncode != 0 and "Error parsing" in refused.stdout + refused.stderr
    assert shown(renamed).returncode == 0
