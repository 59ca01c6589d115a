"""The disruption budget's leases: at most K per group (and label value), renewed by
their holder, reclaimed once expired; over real HTTP only signed, recent requests from
accepted devices count."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import trio

from agent.device_identity import DeviceIdentity
from agent.errors import LeaseUnavailableError
from agent.lease_client import LeaseClient
from agent.policy.model import Disruption
from agent.wire.lease import LeaseRequest, SignedLeaseRequest
from hub.database import HubDatabase
from hub.policy.leases import acquire_lease, handle_lease_request, held_leases, release_lease
from hub.policy.policies import set_policy
from tests.fleet import start_agent, start_hub

T0 = datetime(2024, 6, 3, 12, tzinfo=UTC)
BUDGET = Disruption(max_concurrent=2, lease_minutes=10)


@pytest.fixture
def database(tmp_path):
    db = HubDatabase.create(tmp_path / "hub.db")
    yield db
    db.close()


def ask(device: str, scope: str = "", action="acquire", release="releases/a/1/a.tar"):
    return LeaseRequest(action=action, device_id=f"dev-{device}", group="cluster", scope=scope,
                        release=release, ttl_seconds=600, issued_at=T0.isoformat())


def test_at_most_k_leases_are_granted_and_the_refusal_says_when_to_retry(database):
    assert acquire_lease(database, ask("a1"), BUDGET, T0).granted
    assert acquire_lease(database, ask("a2"), BUDGET, T0 + timedelta(minutes=1)).granted
    refused = acquire_lease(database, ask("a3"), BUDGET, T0 + timedelta(minutes=2))
    assert not refused.granted and refused.held == 2 and refused.max_concurrent == 2
    assert refused.retry_at == (T0 + timedelta(minutes=10)).isoformat()


def test_a_holder_renews_its_own_lease_without_taking_a_second_slot(database):
    acquire_lease(database, ask("a1"), BUDGET, T0)
    renewed = acquire_lease(database, ask("a1"), BUDGET, T0 + timedelta(minutes=5))
    assert renewed.granted and renewed.held == 1
    assert renewed.expires_at == (T0 + timedelta(minutes=15)).isoformat()


def test_a_released_lease_frees_its_slot_at_once(database):
    acquire_lease(database, ask("a1"), BUDGET, T0)
    acquire_lease(database, ask("a2"), BUDGET, T0)
    release_lease(database, ask("a1", action="release"))
    assert acquire_lease(database, ask("a3"), BUDGET, T0 + timedelta(seconds=1)).granted


def test_an_expired_lease_is_reclaimed_and_audited(database):
    acquire_lease(database, ask("dead1"), BUDGET, T0)
    acquire_lease(database, ask("dead2"), BUDGET, T0)
    assert not acquire_lease(database, ask("a3"), BUDGET, T0 + timedelta(minutes=9)).granted
    assert acquire_lease(database, ask("a3"), BUDGET, T0 + timedelta(minutes=10)).granted
    reclaimed = database.query("SELECT subject FROM audit WHERE action = 'lease.reclaim'")
    assert sorted(row["subject"] for row in reclaimed) == ["dev-dead1", "dev-dead2"]
    assert [row["device_id"] for row in held_leases(database, T0 + timedelta(minutes=10))] == [
        "dev-a3"]


def test_the_budget_is_counted_per_label_value(database):
    one = Disruption(max_concurrent=1, per_label="cluster")
    assert acquire_lease(database, ask("db1", "cluster=db-a"), one, T0).granted
    assert not acquire_lease(database, ask("db2", "cluster=db-a"), one, T0).granted
    assert acquire_lease(database, ask("db3", "cluster=db-b"), one, T0).granted


def test_without_a_budget_every_lease_is_granted(database):
    assert all(acquire_lease(database, ask(f"d{i}"), None, T0).granted for i in range(5))


def test_requests_must_be_signed_by_the_device_and_recent(database, tmp_path):
    identity = DeviceIdentity.load_or_create(tmp_path / "device.key")
    other = DeviceIdentity.load_or_create(tmp_path / "other.key")
    with database.transaction() as db:
        db.execute("INSERT INTO devices (device_id, public_key, name, hostname, grp, site, "
                   "labels, status, enrolled_at) VALUES (?, ?, 'n', 'h', 'cluster', 's', '{}',"
                   " 'accepted', ?)", (identity.device_id, identity.public_key_raw,
                                       T0.isoformat()))
    request = ask("x").model_copy(update={"device_id": identity.device_id})
    good = SignedLeaseRequest.sign(request, identity.private_key)
    assert handle_lease_request(database, good, T0).granted
    forged = SignedLeaseRequest.sign(request, other.private_key)
    with pytest.raises(Exception, match="signature does not verify"):
        handle_lease_request(database, forged, T0)
    with pytest.raises(Exception, match="replayed, or a clock is wrong"):
        handle_lease_request(database, good, T0 + timedelta(minutes=6))


async def test_over_http_the_hub_enforces_the_signed_policy_budget(tmp_path, nursery):
    hub = await start_hub(tmp_path, nursery)
    policy_file = tmp_path / "cluster.toml"
    policy_file.write_text("[disruption]\nmax_concurrent = 1\nlease_minutes = 5\n")
    set_policy(hub.hub_dir, "cluster", policy_file)
    first, _ = await start_agent(hub, nursery, "node1", "127.0.0.2", group="cluster")
    second, _ = await start_agent(hub, nursery, "node2", "127.0.0.3", group="cluster")
    one = LeaseClient(hub.url, first.identity, 5)
    two = LeaseClient(hub.url, second.identity, 5)
    granted = await one.acquire("cluster", "", "releases/a/1/a.tar", 3600)
    assert granted.granted and granted.max_concurrent == 1
    # The lifetime is the policy's (5 min), not what the device asked for (1 h).
    expires = datetime.fromisoformat(granted.expires_at)
    assert expires - datetime.now(UTC) < timedelta(minutes=5, seconds=5)
    assert not (await two.acquire("cluster", "", "releases/a/1/a.tar", 3600)).granted
    await one.release("cluster", "", "releases/a/1/a.tar")
    assert (await two.acquire("cluster", "", "releases/a/1/a.tar", 3600)).granted
    impostor = LeaseClient(hub.url, DeviceIdentity.load_or_create(tmp_path / "x.key"), 5)
    with pytest.raises(LeaseUnavailableError, match="HTTP 404"):
        await impostor.acquire("cluster", "", "releases/a/1/a.tar", 60)
    nursery.cancel_scope.cancel()
    await trio.sleep(0)


async def test_a_device_naming_another_group_is_counted_in_its_own(tmp_path, nursery):
    """node1 is enrolled in `cluster` (budget 1) and asks as if it were in `lab` (no
    budget): its lease still takes cluster's one slot, for cluster's lifetime."""
    hub = await start_hub(tmp_path, nursery)
    policy_file = tmp_path / "cluster.toml"
    policy_file.write_text("[disruption]\nmax_concurrent = 1\nlease_minutes = 5\n")
    set_policy(hub.hub_dir, "cluster", policy_file)
    first, _ = await start_agent(hub, nursery, "node1", "127.0.0.2", group="cluster")
    second, _ = await start_agent(hub, nursery, "node2", "127.0.0.3", group="cluster")
    claimed = await LeaseClient(hub.url, first.identity, 5).acquire(
        "lab", "", "releases/a/1/a.tar", 86400)
    assert claimed.granted and claimed.max_concurrent == 1
    expires = datetime.fromisoformat(claimed.expires_at)
    assert expires - datetime.now(UTC) < timedelta(minutes=5, seconds=5)
    assert not (await LeaseClient(hub.url, second.identity, 5).acquire(
        "cluster", "", "releases/a/1/a.tar", 3600)).granted
    database = HubDatabase(hub.hub_dir.database)
    assert [row["grp"] for row in held_leases(database, datetime.now(UTC))] == ["cluster"]
    database.close()
    nursery.cancel_scope.cancel()
    await trio.sleep(0)


def test_a_device_may_ask_for_a_shorter_lease_than_the_policy_never_a_longer_one(database):
    short = ask("a1").model_copy(update={"ttl_seconds": 60})
    assert acquire_lease(database, short, BUDGET, T0).expires_at == (
        T0 + timedelta(seconds=60)).isoformat()
    long = ask("a2").model_copy(update={"ttl_seconds": 86400})
    assert acquire_lease(database, long, BUDGET, T0).expires_at == (
        T0 + timedelta(minutes=10)).isoformat()
