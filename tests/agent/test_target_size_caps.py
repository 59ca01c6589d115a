"""Every target an agent fetches through TUF has a size cap fitting its kind, checked
against the signed length before anything is downloaded (issue 12, attack 7: a hub with
its online rollout key signed a 64 MiB rollout document and every agent fetched and
parsed it).

Real hub repository (HubRepository, real keys and metadata) served over real HTTP on
loopback by a server that records every path requested.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from agent.errors import TargetTooLargeError
from agent.metadata_client import MetadataClient
from agent.target_size_caps import (
    ASSIGNMENT_CAP,
    MIB,
    OTHER_CAP,
    POLICY_CAP,
    ROLLOUT_CAP,
    TORRENT_CAP,
    size_cap,
)
from hub.errors import RepositoryError
from hub.hub_dir import HubDir
from hub.repository.tuf_repository import HubRepository, ReleaseTargetEntry


class _RecordingHandler(SimpleHTTPRequestHandler):
    requested: list[str]

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.requested.append(self.path)
        super().do_GET()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def attackers_signer(monkeypatch: pytest.MonkeyPatch) -> None:
    """The hub refuses to sign oversized targets (tested below); an attacker's own
    signing code holding the same keys does not, so the agent-side tests turn it off."""
    monkeypatch.setattr("hub.repository.tuf_repository._refuse_oversized",
                        lambda path, length: None)


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[tuple[HubRepository, str, list[str]]]:
    hub_dir = HubDir(tmp_path / "hub")
    repo = HubRepository.initialize(hub_dir)
    requested: list[str] = []
    handler = type("Handler", (_RecordingHandler,), {"requested": requested})
    server = ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(hub_dir.repository)))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield repo, f"http://127.0.0.1:{server.server_address[1]}", requested
    server.shutdown()
    server.server_close()
    thread.join()


def _client(repo: HubRepository, url: str, tmp_path: Path) -> MetadataClient:
    return MetadataClient(tmp_path / "agent/metadata", tmp_path / "agent/targets", url,
                          trusted_root=repo.root_bytes())


def test_each_kind_of_target_has_its_cap() -> None:
    assert size_cap("rollouts/lab.json") is ROLLOUT_CAP and ROLLOUT_CAP.max_bytes == MIB
    assert size_cap("policies/lab.toml") is POLICY_CAP and POLICY_CAP.max_bytes == 64 * 1024
    assert size_cap("assignments/dev-1.json") is ASSIGNMENT_CAP
    assert ASSIGNMENT_CAP.max_bytes == 4096
    assert size_cap("releases/app/1.0/app.tar.torrent") is TORRENT_CAP
    assert TORRENT_CAP.max_bytes == 16 * MIB
    assert size_cap("releases/app/1.0/notes.txt") is OTHER_CAP and OTHER_CAP.max_bytes == MIB


def test_a_huge_rollout_document_signed_with_the_online_key_is_refused_before_download(
        hub, tmp_path: Path, attackers_signer: None) -> None:
    repo, url, requested = hub
    # The attacker owns the hub server and its online rollout key: it signs a 2 MiB
    # rollout document (the red team used 64 MiB; anything above the cap is the same).
    repo.set_rollout_document("rollouts/lab.json", b" " * (2 * MIB))
    client = _client(repo, url, tmp_path)
    client.refresh()
    with pytest.raises(TargetTooLargeError) as refused:
        client.rollout_document("lab")
    assert str(refused.value) == (
        f"target rollouts/lab.json is signed with length {2 * MIB} bytes, more than the "
        f"{MIB} bytes a rollout document may have: not downloaded")
    assert not any(path.startswith("/targets/") for path in requested), requested


def test_a_rollout_document_within_its_cap_is_downloaded(hub, tmp_path: Path) -> None:
    repo, url, requested = hub
    document = b'{"group": "lab", "rollouts": []}' + b" " * (MIB - 100)
    repo.set_rollout_document("rollouts/lab.json", document)
    client = _client(repo, url, tmp_path)
    client.refresh()
    assert client.rollout_document("lab") == document


@pytest.mark.parametrize(("path", "size"), [
    ("policies/lab.toml", 64 * 1024 + 1),
    ("assignments/dev-0001.json", 4097),
    ("releases/app/1.0/app.tar.torrent", 16 * MIB + 1),
])
def test_small_targets_above_their_kinds_cap_are_not_downloaded(
        hub, tmp_path: Path, path: str, size: int, attackers_signer: None) -> None:
    repo, url, requested = hub
    big = tmp_path / "big"
    big.write_bytes(b"#" * size)
    repo.add_release_targets([ReleaseTargetEntry(path, big, serve_via_tuf=True)])
    client = _client(repo, url, tmp_path)
    client.refresh()
    with pytest.raises(TargetTooLargeError, match=f"^target {path} is signed with length "
                       f"{size} bytes, more than"):
        client.download_small_target(path)
    assert not any(p.startswith("/targets/") for p in requested), requested


def test_the_hub_refuses_to_sign_what_agents_would_refuse(hub, tmp_path: Path) -> None:
    repo, _, _ = hub
    with pytest.raises(RepositoryError, match="^target rollouts/lab.json is signed with "
                       f"length {MIB + 1} bytes.*agents would refuse it, so it is not signed"):
        repo.set_rollout_document("rollouts/lab.json", b" " * (MIB + 1))
    with pytest.raises(RepositoryError, match="a rollout document may have"):
        repo.set_rollout_documents({"rollouts/lab.json": b" " * (MIB + 1)})
    big = tmp_path / "lab.toml"
    big.write_bytes(b"#" * (64 * 1024 + 1))
    before = repo.release_targets()
    with pytest.raises(RepositoryError, match="a group policy may have"):
        repo.add_release_targets([ReleaseTargetEntry("policies/lab.toml", big,
                                                     serve_via_tuf=True)])
    assert repo.release_targets() == before and repo.rollout_targets() == {}
