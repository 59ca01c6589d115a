"""Hand the hub the results it lacks, from whatever this agent holds (its own and
relayed). Asks first (`results/missing`), so each body crosses the WAN at most once per
relay, then uploads in batches (`results/batch`). Results the hub holds, stored now or
before, or refused for good (a forged one slipped past no one: the hub checks too) are
marked handed over and never asked about again.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

import httpx

from agent.errors import WireFormatError
from agent.gossip.store import GossipStore
from agent.wire.decoding import decode_json
from agent.wire.gossip import MAX_RELAYED_RESULTS

log = logging.getLogger(__name__)


@dataclass
class Handover:
    held: list[str] = field(default_factory=list)
    """Record ids the hub now holds (stored by this call, or before)."""
    stored: int = 0
    refused: int = 0


class HubUnreachableError(Exception):
    pass


async def hand_over(store: GossipStore, hub_url: str, timeout: float) -> Handover:
    """One pass; raises HubUnreachableError if the hub cannot be asked."""
    outcome = Handover()
    pending = store.not_handed_over(limit=4 * MAX_RELAYED_RESULTS)
    if not pending:
        return outcome
    by_id = {record.key: record for record in pending}
    async with httpx.AsyncClient(base_url=hub_url.rstrip("/"), timeout=timeout) as client:
        answer = await _post(client, "/api/v1/results/missing", {"record_ids": list(by_id)})
        missing = [i for i in answer.get("missing", []) if i in by_id]
        done = [i for i in by_id if i not in set(missing)]
        outcome.held.extend(done)
        for start in range(0, len(missing), MAX_RELAYED_RESULTS):
            chunk = missing[start:start + MAX_RELAYED_RESULTS]
            body = {"results": [json.loads(by_id[i].body) for i in chunk]}
            answer = await _post(client, "/api/v1/results/batch", body)
            stored = answer.get("stored", [])
            held = stored + answer.get("duplicate", [])
            refused = [r.get("record_id") for r in answer.get("refused", [])]
            outcome.stored += len(stored)
            outcome.refused += len(refused)
            outcome.held.extend(held)
            done.extend(i for i in held + refused if i in by_id)
    store.mark_handed_over([(by_id[i].origin, i) for i in done])
    if outcome.stored or outcome.refused:
        log.info("handed %d relayed result(s) to the hub (%d refused)",
                 outcome.stored, outcome.refused)
    return outcome


async def _post(client: httpx.AsyncClient, path: str, body: object) -> dict:  # type: ignore[type-arg]
    try:
        response = await client.post(path, json=body)
    except httpx.HTTPError as exc:
        raise HubUnreachableError(f"cannot reach the hub: {exc or type(exc).__name__}") from None
    if response.status_code != 200:
        raise HubUnreachableError(f"hub answered {path} with HTTP {response.status_code}")
    try:
        answer = decode_json(response.content, f"hub answer to {path}")
    except WireFormatError as exc:
        raise HubUnreachableError(str(exc)) from None
    return answer if isinstance(answer, dict) else {}
