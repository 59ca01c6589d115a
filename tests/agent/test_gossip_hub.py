"""Gossip with a real hub (Hypercorn, TUF repository, SQLite) and real enrolled agents
(certificates from the hub's CA at enrollment): relayed results reach the hub once,
forged ones never; with the hub down, TUF metadata comes from peers, and a peer serving
wrong metadata is refused by TUF, penalised, and the agent goes on with another."""

import json

import httpx
import pytest
import trio

from agent.gossip import refresh_metadata
from agent.gossip.relay_files import TrustedFiles
from agent.wire.result import Outcome, ResultRecord, SignedResult
from tests.fleet import sha256, start_agent, start_hub

FILES = {"VERSION": b"1.0.0"}
HEALTH = ('[[health]]\ntype = "file-hash"\npath = "/opt/app/VERSION"\n'
          f'sha256 = "{sha256(b"1.0.0")}"\n')


def result_of(daemon, record_id, device_id=None, key=None):
    record = ResultRecord(
        record_id=record_id, device_id=device_id or daemon.identity.device_id,
        release="releases/app/1.0.0/app.tar", name="app", version="1.0.0",
        outcome=Outcome.INSTALLED, started_at="2026-11-25T00:00:00+00:00",
        finished_at="2026-11-25T00:01:00+00:00",
    )
    return SignedResult.sign(record, key or daemon.identity.private_key)


async def serve_gossip(daemon, nursery, address):
    return await nursery.start(daemon.gossip.node.serve, address, 0)


async def test_relayed_results_reach_the_hub_exactly_once_and_forged_ones_never(
    tmp_path, nursery
):
    hub = await start_hub(tmp_path, nursery)
    relay, _ = await start_agent(hub, nursery, "relay", "127.0.0.2")
    origin, _ = await start_agent(hub, nursery, "origin", "127.0.0.3")
    hostile, _ = await start_agent(hub, nursery, "hostile", "127.0.0.4")
    origin_address = await serve_gossip(origin, nursery, "127.0.0.3")
    hostile_address = await serve_gossip(hostile, nursery, "127.0.0.4")
    genuine = result_of(origin, "0a0b0c0d-0001")
    origin.gossip.node.publish("result", "0a0b0c0d-0001", genuine.to_bytes().decode())
    # The hostile device signs "the origin's" result with its own key, under its name.
    forged = result_of(hostile, "0a0b0c0d-0002", device_id=origin.identity.device_id)
    hostile.gossip.node.publish("result", "0a0b0c0d-0002", forged.to_bytes().decode())

    assert (await relay.gossip.node.exchange_with(origin_address)).accepted >= 1
    assert (await relay.gossip.node.exchange_with(hostile_address)).refused
    await relay.gossip.hand_over_once()
    await relay.gossip.hand_over_once()  # again: nothing new, nothing twice
    await origin.gossip.hand_over_once()  # the origin itself, later
    await hostile.gossip.hand_over_once()  # the forger hands its forgery over directly
    async with httpx.AsyncClient(base_url=hub.url) as client:
        answer = await client.post("/api/v1/results/batch",
                                   json={"results": [json.loads(forged.to_bytes())] * 2})
    assert [r["record_id"] for r in answer.json()["refused"]] == ["0a0b0c0d-0002"] * 2

    assert [(r["record_id"], r["device_id"]) for r in hub.results()] == [
        ("0a0b0c0d-0001", origin.identity.device_id)]


@pytest.fixture
async def hub_to_stop(tmp_path, nursery):
    scope = trio.CancelScope()

    async def run_hub(task_status):
        with scope:
            async with trio.open_nursery() as hub_nursery:
                task_status.started(await start_hub(tmp_path, hub_nursery))
                await trio.sleep_forever()

    hub = await nursery.start(run_hub)
    hub.stop = scope.cancel
    return hub


class WrongMetadata(TrustedFiles):
    """A peer that serves timestamp metadata whose signature was tampered with."""

    def read(self, path):
        data = super().read(path)
        if path == "metadata/timestamp.json" and data is not None:
            metadata = json.loads(data)
            signature = metadata["signatures"][0]["sig"]
            metadata["signatures"][0]["sig"] = ("1" if signature[0] == "0" else "0") + signature[1:]
            data = json.dumps(metadata).encode()
        return data


async def test_hub_down_metadata_comes_from_a_peer_and_one_serving_wrong_metadata_is_skipped(
    hub_to_stop, nursery
):
    hub = hub_to_stop
    ahead, _ = await start_agent(hub, nursery, "ahead", "127.0.0.2")
    hostile, _ = await start_agent(hub, nursery, "hostile", "127.0.0.3")
    late, _ = await start_agent(hub, nursery, "late", "127.0.0.4")
    hub.rollout(hub.publish("app", "1.0.0", FILES, HEALTH))
    # The agent ahead refreshed while the hub was up: it holds the metadata, the rollout
    # document and the torrent (as ngclient persisted them).
    await refresh_metadata(ahead.metadata, ahead.gossip.fetcher)
    document = await trio.to_thread.run_sync(ahead.metadata.rollout_document, "lab")
    torrent_path = json.loads(document)["rollouts"][0]["release"] + ".torrent"
    await trio.to_thread.run_sync(ahead.metadata.download_small_target, torrent_path)
    ahead_address = await serve_gossip(ahead, nursery, "127.0.0.2")
    hostile.gossip.node.files = WrongMetadata(ahead.state.metadata, ahead.state.targets)
    hostile_address = await serve_gossip(hostile, nursery, "127.0.0.3")
    hub.stop()
    await trio.sleep(0.5)

    late.gossip.node.members.add(hostile_address)  # asked first
    late.gossip.node.members.add(ahead_address)
    await refresh_metadata(late.metadata, late.gossip.fetcher)
    assert late.gossip.node.members.is_banned(hostile_address)  # TUF refused what it sent
    assert late.gossip.fetcher.last_peer == ahead_address
    document = await trio.to_thread.run_sync(late.metadata.rollout_document, "lab")
    assert b"releases/app/1.0.0" in document
    torrent = await trio.to_thread.run_sync(late.metadata.download_small_target, torrent_path)
    assert torrent.startswith(b"d")  # bencoded, verified by TUF against its signed hash
