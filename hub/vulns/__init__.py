"""Vulnerability exposure from offline feed files (issue 14 item 2).

Others use: `feed_files.read_feeds` and `store.import_advisories` (import OSV records
and the Debian security tracker's JSON), `matching.Matcher` / `FeedIndex` (pure matching
of hub.inventory.software.DeviceSoftware against feed statements), `exposure.
exposure_report` (per vulnerability x group), `explanation.explain` (why a device
matched, or not).
"""
