"""Meisitong hub: TUF repository, seeding and tracker, results store, admin CLI."""
