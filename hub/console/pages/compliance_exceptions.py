"""Compliance exceptions in the console: `/console/compliance/exceptions` lists every
exception (expired ones marked: they no longer count; the JSON, what `exceptions list
--json` prints, at `/console/api/compliance/exceptions`), and admins add and remove them
with forms (POST `/console/compliance/exceptions/add` and `/remove`, CSRF-checked by the
guard). The changes are hub/compliance/exceptions.py's, which audits each in the
transaction that makes it, with `admin:NAME` as the actor — what the CLI writes for the
admin NAME. An auditor sees the list and no forms, and a forged POST is refused 403 by
console_action. A refused field is shown on the page (400) with the form as it was.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from hub.compliance.exceptions import add_exception, list_exceptions, remove_exception
from hub.console.auth import (
    audit_actor,
    console_action,
    console_database,
    console_page,
    form_fields,
    render,
)
from hub.database import HubDatabase
from hub.errors import ComplianceInputError, HubError, UnknownDeviceError, UnknownReleaseError

PAGE = "/console/compliance/exceptions"
FORM_FIELDS = ("device", "release", "reason", "expires")


def field_of(error: HubError) -> str:
    """Which form field a refusal is about (hub/compliance/exceptions.py names it the
    CLI's way, `--reason` or `DEVICE`; the form's fields are the same words)."""
    if isinstance(error, UnknownDeviceError):
        return "device"
    if isinstance(error, UnknownReleaseError):
        return "release"
    first = str(error).split(" ", 1)[0].strip("-:").lower()
    return first if first in FORM_FIELDS else ""


def for_form(message: str) -> str:
    """The library's message with the CLI's option spelling put as the form says it."""
    for name in FORM_FIELDS:
        message = message.replace(f"--{name}", name).replace(name.upper(), name)
    return message


def _releases(database: HubDatabase) -> list[dict[str, Any]]:
    return [dict(row) for row in database.query(
        "SELECT name, version, target FROM releases ORDER BY name, version")]


async def _page(request: Request, status_code: int = 200, error: str = "",
                field: str = "", given: dict[str, str] | None = None) -> Response:
    exceptions = await console_database(request, list_exceptions)
    releases = await console_database(request, _releases)
    return render(request, "compliance_exceptions.html", status_code=status_code,
                  exceptions=exceptions, releases=releases, error=error, field=field,
                  given=given or dict.fromkeys(FORM_FIELDS, ""),
                  done=request.query_params.get("done", "")[:20])


@console_page()
async def exceptions_page(request: Request) -> Response:
    return await _page(request)


@console_page()
async def exceptions_api(request: Request) -> Response:
    """What `meisitong-hub exceptions list --json` prints."""
    return JSONResponse(await console_database(request, list_exceptions))


@console_action()
async def exceptions_add(request: Request) -> Response:
    fields = await form_fields(request)
    given = {name: fields.get(name, "").strip() for name in FORM_FIELDS}
    actor = audit_actor(request)
    try:
        await console_database(request, lambda database: add_exception(
            database, given["device"], given["release"], given["reason"], given["expires"],
            actor))
    except (ComplianceInputError, UnknownDeviceError, UnknownReleaseError) as exc:
        return await _page(request, 400, for_form(str(exc)), field_of(exc), given)
    return RedirectResponse(f"{PAGE}?done=added", status_code=303)


@console_action()
async def exceptions_remove(request: Request) -> Response:
    fields = await form_fields(request)
    device, release = fields.get("device", "").strip(), fields.get("release", "").strip()
    actor = audit_actor(request)
    try:
        await console_database(request, lambda database: remove_exception(
            database, device, release, actor))
    except (ComplianceInputError, UnknownDeviceError, UnknownReleaseError) as exc:
        return await _page(request, 400, for_form(str(exc)), field_of(exc))
    return RedirectResponse(f"{PAGE}?done=removed", status_code=303)


routes: list[BaseRoute] = [
    Route("/compliance/exceptions", exceptions_page, methods=["GET"]),
    Route("/compliance/exceptions/add", exceptions_add, methods=["POST"]),
    Route("/compliance/exceptions/remove", exceptions_remove, methods=["POST"]),
    Route("/api/compliance/exceptions", exceptions_api, methods=["GET"]),
]
