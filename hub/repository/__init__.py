"""The TUF repository and everything that signs or anchors it.

Others use: `tuf_repository.HubRepository` (sign and publish targets, refresh the
timestamp), `tuf_repository.ReleaseTargetEntry`, `signing_keys` (key files),
`offline_record` (what init writes beside the offline keys), `targets_expiry`,
`token_anchor.pinned_root_sha256`, `target_files` (targets at DIR/HASH.NAME).
"""
