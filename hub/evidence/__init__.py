"""Evidence bundles an auditor checks without trusting the hub.

Others use: `export.export_evidence` (`meisitong-hub evidence export`), `verify.verify_bundle`
(pure over the bundle's bytes; `python -m hub.evidence_verify BUNDLE` is its shell), and
`bundle` (the layout both agree on).
"""
