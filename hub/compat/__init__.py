"""The compatibility matrix (issue 14 item 4): a release's results crossed with what the
devices run, and the combinations that fail significantly more often than the rest."""
