"""Enrollment tokens pin the root from the admin's offline side (issue 12, attack 6).

An attacker who owns the hub server (not the offline keys) swapped `root.json` before
`token create`, and the token made new devices trust the attacker's root. Now the pin is
root v1's hash as `init` recorded it in offline.toml (or given with --root-sha256), a
token is refused while the served root does not match it, and a token keeps enrolling
after a root rotation (enrollment checks 1.root.json, then walks the chain).

Real hub repositories and keys, the real CLI, and for enrollment a real HubServer over
HTTP on loopback with the real agent enrollment.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from datetime import UTC, datetime, timedelta

import pytest
import trio
from click.testing import CliRunner
from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import Metadata, Root
from tuf.api.serialization.json import JSONSerializer

from agent.config import AgentConfig
from agent.enrollment_flow import enroll
from agent.errors import EnrollmentError
from hub.cli.main import main
from hub.hub_dir import HubDir
from hub.repository.offline_record import OfflineRecord
from hub.repository.signing_keys import KeyStore
from hub.repository.tuf_repository import HubRepository
from tests.fleet import free_port, start_hub


@pytest.fixture
def hub_dir(initialized_hub_dir):
    return initialized_hub_dir


def swap_in_attackers_root(hub_dir, tmp_path) -> str:
    """As the attacker: a root of its own (its keys) in place of the hub's, both files."""
    attacker = HubDir(tmp_path / "attacker")
    HubRepository.initialize(attacker)
    for name in ("1.root.json", "root.json"):
        shutil.copyfile(attacker.metadata / name, HubDir(hub_dir).metadata / name)
    return hashlib.sha256((attacker.metadata / "root.json").read_bytes()).hexdigest()


def test_init_records_root_v1_beside_the_offline_keys_and_prints_it(tmp_path):
    result = CliRunner().invoke(main, ["init", "--dir", str(tmp_path / "hub")])
    assert result.exit_code == 0, result.output
    record = OfflineRecord.load(tmp_path / "hub/offline-keys")
    served = (tmp_path / "hub/repository/metadata/1.root.json").read_bytes()
    assert record.root_v1_sha256 == hashlib.sha256(served).hexdigest()
    assert f"root sha256        {record.root_v1_sha256}" in result.output
    token = (tmp_path / "hub/enrollment-token").read_text().strip()
    assert token.endswith(f".{record.root_v1_sha256}")


def test_token_create_prints_the_pinned_root(hub_dir):
    record = OfflineRecord.load(hub_dir / "offline-keys")
    result = CliRunner().invoke(main, ["token", "create", "--dir", str(hub_dir), "--json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["root_sha256"] == record.root_v1_sha256
    assert body["token"].endswith(f".{record.root_v1_sha256}")
    plain = CliRunner().invoke(main, ["token", "create", "--dir", str(hub_dir)])
    assert f"root sha256 {record.root_v1_sha256}" in plain.output


def test_a_root_swapped_on_the_server_gets_no_token(hub_dir, tmp_path):
    record = OfflineRecord.load(hub_dir / "offline-keys")
    attackers = swap_in_attackers_root(hub_dir, tmp_path)
    result = CliRunner().invoke(main, ["token", "create", "--dir", str(hub_dir)])
    assert result.exit_code == 1, result.output  # before the fix: a token pinning `attackers`
    assert "1.root.json has SHA-256 " + attackers in result.output
    assert f"is {record.root_v1_sha256}: the root on this server was replaced" in result.output
    assert "no token created" in result.output
    # The hash init printed, given by hand (offline keys moved away): refused the same.
    shutil.rmtree(hub_dir / "offline-keys")
    given = CliRunner().invoke(main, ["token", "create", "--dir", str(hub_dir),
                                      "--root-sha256", record.root_v1_sha256])
    assert given.exit_code == 1 and "the root on this server was replaced" in given.output


def served_root_v1(hub_dir) -> str:
    return hashlib.sha256((hub_dir / "repository/metadata/1.root.json").read_bytes()).hexdigest()


def test_without_the_offline_record_or_a_given_hash_no_token_is_made(hub_dir):
    (hub_dir / "offline-keys/offline.toml").unlink()
    result = CliRunner().invoke(main, ["token", "create", "--dir", str(hub_dir)])
    assert result.exit_code == 1
    assert "offline.toml does not exist" in result.output
    assert "or give the root hash `init` printed with --root-sha256 HEX" in result.output
    record_less = CliRunner().invoke(main, ["token", "create", "--dir", str(hub_dir),
                                            "--root-sha256", served_root_v1(hub_dir)])
    assert record_less.exit_code == 0, record_less.output  # a hub made before offline.toml
    bad = CliRunner().invoke(main, ["token", "create", "--dir", str(hub_dir),
                                    "--root-sha256", "abc"])
    assert bad.exit_code == 1 and "'abc' is not a SHA-256" in bad.output


def rotate_root_key(hub: HubDir) -> None:
    """The admin rotates the root key offline: root v2 names a new key, signed by the
    old one (v1's threshold) and the new one (v2's)."""
    keys = KeyStore(hub.offline_keys, hub.online_keys)
    old = keys.load("root")
    new = CryptoSigner.generate_ed25519()
    root = Metadata[Root].from_file(str(hub.metadata / "root.json"))
    root.signed.revoke_key(old.public_key.keyid, "root")
    root.signed.add_key(new.public_key, "root")
    root.signed.version += 1
    root.signed.expires = datetime.now(UTC) + timedelta(days=365)
    root.signatures.clear()
    root.sign(old, append=True)
    root.sign(new, append=True)
    data = root.to_bytes(JSONSerializer(compact=False))
    (hub.metadata / "2.root.json").write_bytes(data)
    (hub.metadata / "root.json").write_bytes(data)


def agent_config(tmp_path, name: str) -> AgentConfig:
    home = tmp_path / name
    home.mkdir()
    listen = f"127.0.0.2:{free_port('127.0.0.2')}"
    (home / "agent.toml").write_text(
        f'[agent]\nstate_dir = "{home / "state"}"\nname = "{name}"\ngroup = "lab"\n'
        f'install_prefix = "{home / "root"}"\n[p2p]\nlisten = "{listen}"\n'
        "local_discovery = false\n")
    return AgentConfig.load(home / "agent.toml")


async def test_a_token_made_after_a_root_rotation_still_enrolls_and_chains_to_the_new_root(
        tmp_path, nursery):
    hub = await start_hub(tmp_path, nursery)
    rotate_root_key(hub.hub_dir)
    result = await trio.to_thread.run_sync(lambda: CliRunner().invoke(
        main, ["token", "create", "--dir", str(hub.hub_dir.root), "--json"]))
    assert result.exit_code == 0, result.output
    token = json.loads(result.output)["token"]
    config = agent_config(tmp_path, "new")
    await enroll(config, hub.url, token)  # before the fix: the token pinned root v2
    trusted = Metadata.from_file(str(config.agent.state_dir / "metadata/root.json"))
    assert trusted.signed.version == 2
    # The token made at init (before the rotation) enrolls too.
    await enroll(agent_config(tmp_path, "old"), hub.url, hub.token)
    nursery.cancel_scope.cancel()


async def test_a_device_does_not_enroll_with_a_hub_whose_root_was_swapped(tmp_path, nursery):
    hub = await start_hub(tmp_path, nursery)
    swap_in_attackers_root(hub.hub_dir.root, tmp_path)
    with pytest.raises(EnrollmentError, match="but the token expects"):
        await enroll(agent_config(tmp_path, "new"), hub.url, hub.token)
    nursery.cancel_scope.cancel()
