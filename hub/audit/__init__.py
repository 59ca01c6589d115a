"""The hub's audit log: append-only, hash-chained, signed, anchored where agents witness it.

Others use: `chain.append` (through `HubDatabase.audit`), `chain.adopt_unchained`
(upgrade), `log.query` (the filterable list), `export.export_chain` /
`export.export_witnesses` (what an auditor takes away), `verify.verify_chain` (pure: no
database, no hub), `anchor.anchor_head` (the serving hub puts the head in timestamp.json),
`witnesses` (heads devices signed in their heartbeats).
"""
