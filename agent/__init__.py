"""Meisitong endpoint agent.

The hub imports from the agent only what `SHARED_WITH_HUB` names: the formats both
sides speak and the few helpers both must agree on (size caps, tracker and peer-id
conventions, listen addresses, one daemon per directory, the policy evaluator the
hub's forecast replays). Everything else is the agent's own and may change freely;
`make lint` enforces this (import-linter contract in pyproject.toml, kept equal to this
list by tests/test_import_contract.py).
"""

__version__ = "0.1.0"

SHARED_WITH_HUB = (
    "agent.wire",              # wire formats: records, rollouts, releases, leases, gossip
    "agent.errors",            # one error hierarchy both sides catch
    "agent.policy",            # the policy format and pure evaluator (not gate/source/hold)
    "agent.policy.model",
    "agent.policy.evaluator",
    "agent.policy.assignment",
    "agent.policy.windows",
    "agent.policy.clock",
    "agent.rollout_selection",  # which devices a stage includes: both must compute it alike
    "agent.target_size_caps",  # what agents fetch within, so the hub refuses to sign more
    "agent.torrent_network",   # libtorrent settings both the seeder and agents use
    "agent.archive",           # what a payload archive may hold, checked at publish
    "agent.atomic_file",
    "agent.sqlite_durable",
    "agent.shutdown",
    "agent.instance_lock",
    "agent.listen_address",
    "agent.readiness",         # requirement evaluation: agents before download, hub predicting
    "agent.log_format",        # both daemons' log lines (text or JSON) have one shape
    "agent.byte_sizes",        # sizes in reasons the hub's readiness prediction repeats
)
