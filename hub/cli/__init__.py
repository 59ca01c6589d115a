"""`meisitong-hub`, the admin's command line: `main` is the entry point; `common`
holds what every command shares (--dir, --json, error printing, the acting admin)."""

from hub.cli.main import main

__all__ = ["main"]
