"""What the hub (all of it but the offline keys) and an enrolled peer can feed a daemon,
and what the daemon does: it keeps running (issue 12, attacks 3 and 4). Real hub
(Hypercorn, TUF repository signed with the hub's own keys, SQLite) and real enrolled
agents; the compromised hub is the real one, driven with its online rollout key."""

import json
import logging

import httpx
import pytest
import trio

from agent.wire.result import Outcome, SignedResult
from agent.wire.rollout import GroupRollouts, RolloutEntry
from hub.repository.tuf_repository import HubRepository
from tests.agent.test_gossip_hub import FILES, HEALTH, result_of, serve_gossip
from tests.fleet import start_agent, start_hub

SHARED_ID = "0f0f0f0f-0000-4000-8000-00000000dead"


async def test_a_rollout_naming_a_signed_target_without_release_fields_is_ignored(
    tmp_path, nursery, caplog
):
    hub = await start_hub(tmp_path, nursery)
    agent, _ = await start_agent(hub, nursery, "a", "127.0.0.2")
    release = hub.publish("app", "1.0.0", FILES, HEALTH)
    # The online rollout key names the release's .torrent: a target the admin signed,
    # but one without release fields.
    document = GroupRollouts(group="lab", rollouts=[
        RolloutEntry(release=release + ".torrent", started_at="2026-12-01T00:00:00+00:00")])
    HubRepository(hub.hub_dir).set_rollout_document("rollouts/lab.json", document.to_bytes())
    with caplog.at_level(logging.WARNING):
        await agent.cycle()
        await agent.cycle()  # every refresh, not only the first
    assert f"rollout of {release}.torrent ignored" in caplog.text
    assert agent.journal.get(release + ".torrent") is None


async def test_the_main_loop_survives_an_exception_nobody_foresaw(tmp_path, nursery,
                                                                  monkeypatch):
    hub = await start_hub(tmp_path, nursery)
    agent, _ = await start_agent(hub, nursery, "a", "127.0.0.2")
    cycles = []

    async def cycle():
        cycles.append(1)
        if len(cycles) == 1:
            raise KeyError("a field the hub left out")

    async def no_wait(seconds):
        await trio.sleep(0)

    monkeypatch.setattr(agent, "cycle", cycle)
    monkeypatch.setattr(agent.gate, "sleep", no_wait)
    nursery.start_soon(agent._main_loop)
    with trio.move_on_after(5):
        while len(cycles) < 3:
            await trio.sleep(0.02)
    assert len(cycles) >= 3
    assert agent.journal.status()["last_error"][0] == ""  # cleared by the cycles after


async def test_the_outbox_loop_survives_a_hostile_hub_answer(tmp_path, nursery, monkeypatch):
    hub = await start_hub(tmp_path, nursery)
    agent, _ = await start_agent(hub, nursery, "a", "127.0.0.2")
    calls = []

    async def deliver():
        calls.append(1)
        if len(calls) == 1:
            raise TypeError("'NoneType' object is not subscriptable")
        return 0

    monkeypatch.setattr(agent, "deliver_results", deliver)
    monkeypatch.setattr("agent.daemon.OUTBOX_RETRY_SECONDS", 0.01)
    nursery.start_soon(agent._outbox_loop)
    with trio.move_on_after(5):
        while len(calls) < 2:
            await trio.sleep(0.02)
    assert len(calls) >= 2


def put_in_outbox(daemon, signed):
    with daemon.journal._transaction() as db:
        db.execute("INSERT INTO outbox (record_id, release, body, created_at) "
                   "VALUES (?, ?, ?, '2026-12-01T00:00:00+00:00')",
                   (signed.record.record_id, signed.record.release, signed.to_bytes()))


@pytest.mark.parametrize("delivery", ["direct", "relayed"])
async def test_a_peer_posting_first_under_a_victims_record_id_does_not_erase_its_failure(
    tmp_path, nursery, delivery
):
    hub = await start_hub(tmp_path, nursery)
    victim, _ = await start_agent(hub, nursery, "victim", "127.0.0.2")
    rogue, _ = await start_agent(hub, nursery, "rogue", "127.0.0.3")
    failure = SignedResult.sign(
        result_of(victim, SHARED_ID).record.model_copy(update={"outcome": Outcome.REVERTED}),
        victim.identity.private_key)
    put_in_outbox(victim, failure)
    victim.gossip.publish_own()  # the record id is now in gossip, for any peer to read
    rogue_address = await serve_gossip(rogue, nursery, "127.0.0.3")
    victim_address = await serve_gossip(victim, nursery, "127.0.0.2")
    await rogue.gossip.node.exchange_with(victim_address)
    # The rogue signs a record of its own under the victim's id and gets it in first.
    own = result_of(rogue, SHARED_ID)
    rogue.gossip.node.publish("result", SHARED_ID, own.to_bytes().decode())
    async with httpx.AsyncClient(base_url=hub.url) as client:
        assert (await client.post("/api/v1/results", content=own.to_bytes())).status_code == 201
    await victim.gossip.node.exchange_with(rogue_address)

    if delivery == "direct":
        assert await victim.deliver_results() == 0
    else:
        await victim.gossip.hand_over_once()
        assert victim.journal.outbox_counts()[1] == 0
    held = {(row["device_id"], row["outcome"]) for row in hub.results()
            if row["record_id"] == SHARED_ID}
    assert held == {(victim.identity.device_id, "reverted"), (rogue.identity.device_id,
                                                              "installed")}


async def test_a_relay_marks_nothing_delivered_for_another_devices_record_under_our_id(
    tmp_path, nursery
):
    hub = await start_hub(tmp_path, nursery)
    victim, _ = await start_agent(hub, nursery, "victim", "127.0.0.2")
    rogue, _ = await start_agent(hub, nursery, "rogue", "127.0.0.3")
    put_in_outbox(victim, result_of(victim, SHARED_ID))
    rogue_address = await serve_gossip(rogue, nursery, "127.0.0.3")
    own = result_of(rogue, SHARED_ID)
    rogue.gossip.node.publish("result", SHARED_ID, own.to_bytes().decode())
    async with httpx.AsyncClient(base_url=hub.url) as client:
        await client.post("/api/v1/results", content=own.to_bytes())
    await victim.gossip.node.exchange_with(rogue_address)  # holds the rogue's record only
    await victim.gossip.hand_over_once()
    assert [record_id for record_id, _ in victim.journal.undelivered()] == [SHARED_ID]
    assert json.loads(victim.journal.undelivered()[0][1])["record"]["device_id"] == (
        victim.identity.device_id)
