"""Meisitong hub: the thin side. It signs and serves metadata, seeds payloads, answers
the tracker and the device API, and runs the rollout controller.

Layout (each sub-package's `__init__` says what the others may use):

- `hub.repository`: the TUF repository, its keys and signing, targets on disk, the
  admin's offline record (root v1 hash, targets expiry).
- `hub.releases`: publishing a release (payload, torrent, signed target) and what is
  published.
- `hub.swarm`: the tracker, the hub's seeder, torrent making, site-aware peer lists.
- `hub.rollouts`: rollout plans and rules, their store, the evidence, the controller
  and the loop that runs it.
- `hub.policy`: group policies and assignments, disruption-budget leases, the forecast.
- `hub.devices`: enrollment and tokens, the device CA, results (direct and relayed).
- `hub.api`: the HTTP application (Starlette) and bounded request bodies.
- `hub.cli`: `meisitong-hub`.

Top level, shared by all: `errors` (one hierarchy), `config` (hub.toml), `hub_dir`
(where things live), `database` (SQLite), `hub_init` (`init`), `serve` (the process).
"""
