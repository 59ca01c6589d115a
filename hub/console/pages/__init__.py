"""The console's pages and their JSON API, written against hub/console/auth.py.

`routes` is what the console app mounts under /console, paths relative to it
(`Route("/overview", ...)`, `Route("/api/...", ...)`); page modules add theirs here.
/console/ redirects to /console/overview, which a page here provides.
"""

from __future__ import annotations

from starlette.routing import BaseRoute

from hub.console.pages import (
    audit,
    compat,
    compliance,
    compliance_exceptions,
    compliance_report,
    devices,
    overview,
    rollouts,
)

routes: list[BaseRoute] = [
    *overview.routes,
    *rollouts.routes,
    *compliance.routes,
    *compliance_report.routes,
    *compliance_exceptions.routes,
    *compat.routes,
    *devices.routes,
    *audit.routes,
]
