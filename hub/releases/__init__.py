"""Publishing releases and reading what is published.

Others use: `publisher.publish_release`, `published_releases` (which releases and
payloads are published, for the tracker and /payloads/), `status_report.status_report`.
"""
