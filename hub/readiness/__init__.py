"""Readiness: which devices can take a release, predicted from their latest inventories
with the function agents evaluate before downloading (agent/readiness.py)."""
