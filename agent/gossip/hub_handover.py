"""Hand the hub the results it lacks, from whatever this agent holds (its own and
relayed). Asks first (`results/missing`), so each body crosses the WAN at most once per
relay, then uploads in batches (`results/batch`). Results the hub holds, stored now or
before, or refused for good (a forged one slipped past no one: the hub checks too) are
marked handed over and never asked about again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from agent.errors import HubUnreachableError, WireFormatError
from agent.gossip.store import GossipStore
from agent.wire.decoding import decode_json
from agent.wire.gossip import MAX_RELAYED_RESULTS, BatchAnswer, MissingAnswer, RecordKey
from agent.wire.validation import ModelT, parse_model

if TYPE_CHECKING:  # a name of its own, so mypy finds a body that uses httpx unimported
    import httpx as httpx_types

log = logging.getLogger(__name__)


@dataclass
class Handover:
    held: list[tuple[str, str]] = field(default_factory=list)
    """(device, record id) of results the hub now holds (stored by this call, or before).
    Never a record id alone: another device's record under the same id is not ours."""
    stored: int = 0
    refused: int = 0


async def hand_over(store: GossipStore, hub_url: str, timeout: float) -> Handover:
    """One pass; raises HubUnreachableError if the hub cannot be asked or answers
    something that is not the format."""
    outcome = Handover()
    pending = store.not_handed_over(limit=4 * MAX_RELAYED_RESULTS)
    if not pending:
        return outcome
    import httpx  # only with something to hand over: an idle agent has nothing

    by_key = {(record.origin, record.key): record for record in pending}
    keys = [RecordKey(device_id=origin, record_id=key) for origin, key in by_key]
    async with httpx.AsyncClient(base_url=hub_url.rstrip("/"), timeout=timeout) as client:
        answer = _parse(MissingAnswer, await _post(
            client, "/api/v1/results/missing", {"records": [k.model_dump() for k in keys]}))
        missing = [pair for k in answer.missing_records
                   if (pair := (k.device_id, k.record_id)) in by_key]
        lacking = set(missing)
        done = [pair for pair in by_key if pair not in lacking]
        outcome.held.extend(done)
        for start in range(0, len(missing), MAX_RELAYED_RESULTS):
            chunk = missing[start:start + MAX_RELAYED_RESULTS]
            body = {"results": [decode_json(by_key[pair].body, "stored result")
                                for pair in chunk]}
            batch = _parse(BatchAnswer, await _post(client, "/api/v1/results/batch", body))
            held = [pair for k in batch.held if (pair := (k.device_id, k.record_id)) in by_key]
            refused = [pair for r in batch.refused
                       if (pair := (r.device_id, r.record_id)) in by_key]
            outcome.stored += len(batch.stored)
            outcome.refused += len(refused)
            outcome.held.extend(held)
            done.extend(held + refused)
    store.mark_handed_over(done)
    if outcome.stored or outcome.refused:
        log.info("handed %d relayed result(s) to the hub (%d refused)",
                 outcome.stored, outcome.refused)
    return outcome


def _parse(model: type[ModelT], answer: object) -> ModelT:
    try:
        return parse_model(model, answer, f"hub answer ({model.__name__})")
    except WireFormatError as exc:
        raise HubUnreachableError(str(exc)) from None


async def _post(client: httpx_types.AsyncClient, path: str, body: object) -> object:
    import httpx

    try:
        response = await client.post(path, json=body)
    except httpx.HTTPError as exc:
        raise HubUnreachableError(f"cannot reach the hub: {exc or type(exc).__name__}") from None
    if response.status_code != 200:
        raise HubUnreachableError(f"hub answered {path} with HTTP {response.status_code}")
    try:
        return decode_json(response.content, f"hub answer to {path}")
    except WireFormatError as exc:
        raise HubUnreachableError(str(exc)) from None
