"""Hand the hub the software inventories it lacks, this device's and relayed ones.

Like results (agent/gossip/hub_handover.py), it asks first (`inventory/missing`, by
device and sequence), so a record crosses the WAN about once per site, then posts each
lacking record, in sequence order per device (a full before the diffs that apply to
it). Whatever the hub answers for good (taken, already held, refused, 409 for a base it
lacks: the device itself sends a full one when it hears that) marks the entry handed
over; an unreachable or failing hub leaves the rest for the next pass. urllib3 in a
worker thread, as heartbeats: a relay's daemon loads no httpx for this.
"""

from __future__ import annotations

import json
import logging

import trio
import urllib3

from agent.errors import HubUnreachableError, WireFormatError
from agent.gossip.store import GossipStore
from agent.hub_client import post_json, refused_for_good
from agent.wire.decoding import decode_json
from agent.wire.inventory import MAX_ASKED, MissingInventories, SignedInventory
from agent.wire.validation import parse_model

log = logging.getLogger(__name__)


async def hand_over_inventories(store: GossipStore, hub_url: str, timeout: float) -> int:
    """One pass; returns how many records the hub took. Raises HubUnreachableError."""
    pending = store.not_handed_over(limit=MAX_ASKED, kind="software")
    if not pending:
        return 0
    hub_url = hub_url.rstrip("/")
    sequences: dict[tuple[str, str], tuple[str, int]] = {}
    done: list[tuple[str, str]] = []
    for record in pending:
        try:  # verified when stored; parsed again only to learn its sequence
            sequence = SignedInventory.from_bytes(record.body.encode("utf-8"),
                                                  "stored inventory").record.sequence
        except WireFormatError:
            done.append((record.origin, record.key))
            continue
        sequences[(record.origin, record.key)] = (record.origin, sequence)
    asked = {"records": [{"device_id": device, "sequence": sequence}
                         for device, sequence in sequences.values()]}
    status, answer = await _post(f"{hub_url}/api/v1/inventory/missing",
                                 json.dumps(asked).encode(), timeout)
    if status != 200:
        raise HubUnreachableError(f"hub answered inventory/missing with HTTP {status}")
    try:
        missing = parse_model(MissingInventories, decode_json(answer, "hub answer"),
                              "hub answer (inventory/missing)")
    except WireFormatError as exc:
        raise HubUnreachableError(str(exc)) from None
    lacking = {(key.device_id, key.sequence) for key in missing.missing}
    by_key = {(record.origin, record.key): record for record in pending}
    done.extend(pair for pair, held in sequences.items() if held not in lacking)
    taken = 0
    try:
        for pair in sorted((p for p, held in sequences.items() if held in lacking),
                           key=lambda p: sequences[p]):
            status, _answer = await _post(f"{hub_url}/api/v1/inventory",
                                          by_key[pair].body.encode("utf-8"), timeout)
            if status in (200, 201):
                taken += status == 201
            elif not refused_for_good(status):
                raise HubUnreachableError(f"hub answered an inventory with HTTP {status}")
            done.append(pair)
    finally:
        store.mark_handed_over(done)
    if taken:
        log.info("handed %d inventory record(s) to the hub", taken)
    return taken


async def _post(url: str, body: bytes, timeout: float) -> tuple[int, bytes]:
    try:
        return await trio.to_thread.run_sync(post_json, url, body, timeout, 256 * 1024,
                                             abandon_on_cancel=True)
    except urllib3.exceptions.HTTPError as exc:
        raise HubUnreachableError(f"cannot reach the hub: {exc or type(exc).__name__}") from None
