"""The interface pages are written against (hub/console/auth.py), with pages of the test's
own in `hub.console.pages.routes`, served by Hypercorn over real HTTP from the hub's app:
roles, CSRF, render's context, and that a page which forgets its decorator is still
behind login and CSRF."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hub.api.web_app import make_app
from hub.console import pages
from hub.console.admin_accounts import add_admin
from hub.console.auth import (
    audit_actor,
    console_action,
    console_database,
    console_page,
    current_admin,
    form_fields,
    render,
    session_alive,
)
from hub.database import HubDatabase
from hub.hub_dir import HubDir

PASSWORD = "correct horse battery"


@console_page()
async def overview(request: Request) -> Response:
    return render(request, "error.html", message=f"hello {current_admin(request).name}")


@console_page()
async def readings(request: Request) -> Response:
    return JSONResponse({"admin": current_admin(request).name,
                         "alive": await session_alive(request)})


@console_page(role="admin")
async def admins_only(request: Request) -> Response:
    return JSONResponse({"ok": True})


@console_action()
async def pause(request: Request) -> Response:
    fields = await form_fields(request)
    actor = audit_actor(request)

    def record(database: HubDatabase) -> None:
        with database.transaction() as db:
            database.audit(db, actor, "rollout.pause", fields.get("release", "?"))

    await console_database(request, record)
    return JSONResponse({"paused": fields.get("release"), "by": actor})


async def undecorated(request: Request) -> Response:
    return JSONResponse({"reached": True})


TEST_ROUTES = [
    Route("/overview", overview),
    Route("/api/readings", readings),
    Route("/api/admins-only", admins_only),
    Route("/api/pause", pause, methods=["POST"]),
    Route("/api/pause-by-get", pause, methods=["GET"]),
    Route("/api/undecorated", undecorated, methods=["GET", "POST"]),
]


@pytest.fixture
async def console(initialized_hub_dir, nursery, monkeypatch):
    monkeypatch.setattr(pages, "routes", TEST_ROUTES)
    hub_dir = HubDir(initialized_hub_dir)
    database = HubDatabase(hub_dir.database)
    add_admin(database, "alice", "admin", PASSWORD, "admin:test")
    add_admin(database, "audrey", "auditor", PASSWORD, "admin:test")
    database.close()
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    shutdown = trio.Event()
    binds = await nursery.start(
        lambda task_status: serve(make_app(hub_dir), config, shutdown_trigger=shutdown.wait,
                                  task_status=task_status)
    )
    yield binds[0], hub_dir
    shutdown.set()


@asynccontextmanager
async def logged_in(url: str, name: str) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    async with httpx.AsyncClient(base_url=url, headers={"origin": url}, timeout=30) as browser:
        answer = await browser.post("/console/login",
                                    data={"name": name, "password": PASSWORD})
        assert answer.status_code == 303
        page = await browser.get("/console/overview")
        token = re.search(r'name="csrf-token" content="([^"]+)"', page.text)
        assert token
        yield browser, token.group(1)


async def test_render_gives_templates_the_admin_the_csrf_token_and_the_nav(console):
    url, _ = console
    async with logged_in(url, "audrey") as (browser, token):
        page = await browser.get("/console/overview")
        assert page.status_code == 200 and "hello audrey" in page.text
        assert 'class="active" aria-current="page">Overview' in page.text
        assert f'value="{token}"' in page.text and "auditor" in page.text
        assert page.headers["cache-control"] == "no-store"
        assert (await browser.get("/console/api/readings")).json() == {
            "admin": "audrey", "alive": True}


async def test_an_auditor_reads_everything_and_is_refused_every_change(console):
    url, hub_dir = console
    async with logged_in(url, "audrey") as (browser, token):
        assert (await browser.get("/console/api/readings")).status_code == 200
        refused = await browser.post("/console/api/pause", data={"csrf_token": token,
                                                                 "release": "x@1"})
        assert refused.status_code == 403
        assert refused.json() == {"error": "this needs the admin role"}
        assert (await browser.get("/console/api/admins-only")).status_code == 403
    database = HubDatabase(hub_dir.database)
    try:
        assert not database.query("SELECT * FROM audit WHERE action = 'rollout.pause'")
    finally:
        database.close()


async def test_an_admins_change_with_its_token_is_done_and_audited_with_its_login(console):
    url, hub_dir = console
    async with logged_in(url, "alice") as (browser, token):
        by_form = await browser.post("/console/api/pause", data={"csrf_token": token,
                                                                 "release": "app@1.2"})
        assert by_form.json() == {"paused": "app@1.2", "by": "admin:alice"}
        by_header = await browser.post(
            "/console/api/pause", content="release=app%402.0",
            headers={"x-csrf-token": token,
                     "content-type": "application/x-www-form-urlencoded"})
        assert by_header.json()["paused"] == "app@2.0"
        without = await browser.post("/console/api/pause", data={"release": "app@3"})
        assert without.status_code == 403
        assert without.json() == {"error": "CSRF token missing or wrong"}
        json_body = await browser.post("/console/api/pause", json={"csrf_token": token})
        assert json_body.status_code == 403  # a token only from the header for JSON
        assert (await browser.get("/console/api/pause-by-get")).status_code == 405
        huge = await browser.post("/console/api/pause", headers={"x-csrf-token": token},
                                  content=b"x" * (65 * 1024))
        assert huge.status_code == 413
    database = HubDatabase(hub_dir.database)
    try:
        rows = database.query("SELECT actor, subject FROM audit WHERE action = 'rollout.pause'")
    finally:
        database.close()
    assert [tuple(row) for row in rows] == [("admin:alice", "app@1.2"),
                                            ("admin:alice", "app@2.0")]


async def test_a_page_without_a_decorator_is_still_behind_login_and_csrf(console):
    url, _ = console
    async with httpx.AsyncClient(base_url=url, headers={"origin": url}) as anonymous:
        assert (await anonymous.get("/console/api/undecorated")).status_code == 401
        assert (await anonymous.post("/console/api/undecorated")).status_code == 401
    async with logged_in(url, "alice") as (browser, token):
        assert (await browser.post("/console/api/undecorated")).status_code == 403
        done = await browser.post("/console/api/undecorated", headers={"x-csrf-token": token})
        assert done.json() == {"reached": True}
