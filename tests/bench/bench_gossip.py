"""Rounds and bytes for one new result to reach every agent of a site (8, 32, 128).

Each site is real gossip nodes on 127.0.0.1 (real mutual TLS with certificates from the
hub's CA code, SQLite stores, Ed25519 signatures on every record), in steady state: every
agent already holds every agent's inventory record. Then one agent publishes a result
and rounds run (each round: every agent dials one random member, all at once; push-pull)
until every agent holds it. Bytes are everything on the wire (TLS handshakes included)
from the publish to the last round, summed over all agents.

Baseline, measured in the same run on the same sites: the same push-pull exchanges
without digests (each side sends every record it holds), i.e. naive anti-entropy.
Reference for rounds: log2(N) (push-only rumour spreading needs about log2 N + ln N).
"""

from __future__ import annotations

import math
import statistics
import sys
import tempfile
import uuid
from pathlib import Path

import trio

import agent.gossip.node as gossip_node
from tests.agent._gossip_site import SimulatedSite

SIZES = (8, 32, 128)
TRIALS = 5


async def measure(size: int, workdir: Path, naive: bool) -> list[tuple[int, int]]:
    site = SimulatedSite.build(workdir, size)
    original = gossip_node.delta_for
    try:
        async with trio.open_nursery() as nursery:
            await site.start(nursery)
            await site.converge(max_rounds=100)
            if naive:
                gossip_node.delta_for = lambda store, digest, limit: original(store, {}, limit)
            results = []
            for trial in range(TRIALS):
                record_id = str(uuid.uuid4())
                results.append(await site.spread(trial * 7 % size, record_id, max_rounds=100))
            nursery.cancel_scope.cancel()
    finally:
        gossip_node.delta_for = original
        site.close()
    return results


async def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for size in SIZES:
            digest = await measure(size, Path(scratch) / f"digest-{size}", naive=False)
            naive = await measure(size, Path(scratch) / f"naive-{size}", naive=True)
            rows.append((size, digest, naive))
            print(f"  measured {size} agents", file=sys.stderr, flush=True)
    print(f"one new result spreading through a site; {TRIALS} trials each, mean (max)")
    print(f"{'agents':>6} {'rounds':>10} {'log2 N':>6} {'wire KiB':>14} {'KiB/agent':>9} "
          f"{'naive KiB':>10} {'naive/digest':>12}")
    for size, digest, naive in rows:
        rounds = [r for r, _ in digest]
        sent = [b for _, b in digest]
        naive_sent = [b for _, b in naive]
        print(
            f"{size:>6} {statistics.mean(rounds):>5.1f} ({max(rounds):>2}) "
            f"{math.log2(size):>6.1f} {statistics.mean(sent) / 1024:>8.0f} "
            f"({max(sent) / 1024:>4.0f}) {statistics.mean(sent) / 1024 / size:>9.1f} "
            f"{statistics.mean(naive_sent) / 1024:>10.0f} "
            f"{statistics.mean(naive_sent) / statistics.mean(sent):>11.2f}x"
        )


if __name__ == "__main__":
    trio.run(main)
