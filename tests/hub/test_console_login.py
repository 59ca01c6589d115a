"""The console behind login, against a real `meisitong-hub serve` process over HTTP:
nothing but the login page and static assets without a session, sessions that end on
logout, password change and removal, CSRF and Origin on every change, login throttling,
cookie flags, and the audit log of it all (hub/console/)."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import trio
from starlette.routing import Mount, Route

from hub.config import HubConfig
from hub.console.console_app import console_app
from hub.hub_dir import HubDir
from tests.processes import BIN_HUB, Fleet, free_port

PASSWORD = "correct horse battery"
PAGES = ["/console/", "/console/overview", "/console/rollouts", "/console/compliance",
         "/console/devices", "/console/audit", "/console/no-such-page"]


def add_admin(fleet: Fleet, name: str, role: str, password: str = PASSWORD) -> None:
    subprocess.run([BIN_HUB, "admins", "add", name, "--role", role, "--password-stdin",
                    "--dir", str(fleet.hub_dir)], input=password + "\n", text=True,
                   check=True, capture_output=True, timeout=60)


def admins_command(fleet: Fleet, *argv: str, password: str = PASSWORD) -> None:
    subprocess.run([BIN_HUB, "admins", *argv, "--dir", str(fleet.hub_dir)],
                   input=password + "\n", text=True, check=True, capture_output=True,
                   timeout=60)


def audit_rows(fleet: Fleet) -> list[dict]:
    done = subprocess.run([BIN_HUB, "audit", "--json", "--limit", "1000", "--dir",
                           str(fleet.hub_dir)], text=True, capture_output=True, check=True)
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """One serving hub for the module; 127.0.0.2 is its trusted reverse proxy."""
    workdir = tmp_path_factory.mktemp("console")
    url = f"http://127.0.0.1:{free_port('127.0.0.1')}"
    fleet = Fleet(workdir, workdir / "hub", url)
    try:
        fleet.serve_new_hub({"trusted_proxies": ["127.0.0.2"]})
        for name, role in (("alice", "admin"), ("audrey", "auditor"), ("carol", "admin"),
                           ("dave", "admin"), ("erin", "admin"), ("frank", "auditor"),
                           ("grace", "admin")):
            add_admin(fleet, name, role)
        yield fleet
    finally:
        fleet.stop_all()


def client(hub: Fleet, source: str = "127.0.0.1", origin: bool = True) -> httpx.Client:
    """A browser-like client: sends the hub's Origin on every request unless told not to."""
    headers = {"origin": hub.hub_url} if origin else {}
    return httpx.Client(base_url=hub.hub_url, headers=headers, timeout=30,
                        transport=httpx.HTTPTransport(local_address=source))


def log_in(browser: httpx.Client, name: str, password: str = PASSWORD) -> httpx.Response:
    return browser.post("/console/login", data={"name": name, "password": password,
                                                "next": "/console/audit"})


def csrf_token(browser: httpx.Client) -> str:
    page = browser.get("/console/no-such-page", headers={"accept": "text/html"})
    found = re.search(r'name="csrf-token" content="([^"]+)"', page.text)
    assert found, page.text[:500]
    return found.group(1)


def console_paths() -> list[str]:
    """Every route of the console app (the pages' routes included), parameters filled."""

    def walk(routes, prefix: str):
        for route in routes:
            if isinstance(route, Route):
                yield prefix + re.sub(r"\{[^}]+\}", "x", route.path)
            elif isinstance(route, Mount) and route.path != "/static":
                yield from walk(route.routes, prefix + route.path)

    app = console_app(HubDir(Path("/nonexistent")), HubConfig())
    return sorted(set(walk(app.routes, "")) - {"/login"})


def test_nothing_but_login_and_static_assets_is_readable_without_a_session(hub):
    with client(hub) as browser:
        for path in [*PAGES, *(f"/console{p}" for p in console_paths())]:
            page = browser.get(path, headers={"accept": "text/html"})
            if path.startswith("/console/api/"):
                assert page.status_code == 401 and page.json() == {"error": "log in first"}
                continue
            assert page.status_code == 303, path
            assert page.headers["location"].startswith("/console/login?next=/console/"), path
            assert page.headers["cache-control"] == "no-store"
        for path in ["/console/api/session", "/console/api/rollouts", "/console/api/x/y"]:
            api = browser.get(path)
            assert api.status_code == 401 and api.json() == {"error": "log in first"}, path
        events = browser.get("/console/overview", headers={"accept": "text/event-stream"})
        assert events.status_code == 401
        for path in ["/console/logout", "/console/api/rollouts/x/pause", "/console/overview"]:
            assert browser.post(path).status_code == 401, path
        forged = browser.get("/console/api/session",
                             headers={"cookie": "meisitong_console=made-up-session-id"})
        assert forged.status_code == 401
        login = browser.get("/console/login")
        assert login.status_code == 200 and 'name="password"' in login.text
        assert "Overview" not in login.text  # no navigation before login
        assert browser.get("/console/static/console.css").status_code == 200
        assert "consoleFetch" in browser.get("/console/static/console.js").text


def test_security_headers_allow_only_the_hubs_own_assets_and_no_framing(hub):
    with client(hub) as browser:
        headers = browser.get("/console/login").headers
    csp = headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["cache-control"] == "no-store"
    assert "strict-transport-security" not in headers  # plain HTTP


def test_login_opens_a_session_whose_cookie_is_httponly_and_samesite_strict(hub):
    with client(hub) as browser:
        wrong = log_in(browser, "alice", "not the password")
        assert wrong.status_code == 401 and "Wrong name or password" in wrong.text
        assert "meisitong_console" not in browser.cookies
        answer = log_in(browser, "alice")
        assert answer.status_code == 303 and answer.headers["location"] == "/console/audit"
        cookie = answer.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie
        assert "Path=/console" in cookie and "Secure" not in cookie  # plain HTTP, no proxy
        assert browser.get("/console/api/session").json() == {"name": "alice",
                                                              "role": "admin"}
        page = browser.get("/console/", headers={"accept": "text/html"})
        assert page.status_code == 303 and page.headers["location"] == "/console/overview"
        shell = browser.get("/console/no-such-page", headers={"accept": "text/html"})
        assert shell.status_code == 404
        for label in ("Overview", "Rollouts", "Compliance", "Devices", "Audit", "alice",
                      "admin", 'action="/console/logout"'):
            assert label in shell.text
        # Logged in, the login page sends the admin on.
        assert browser.get("/console/login?next=/console/devices").headers["location"] == \
            "/console/devices"
        outside = log_in(browser, "alice")
        assert outside.status_code == 303
    with client(hub) as browser:
        evil = browser.post("/console/login", data={"name": "alice", "password": PASSWORD,
                                                    "next": "//evil.example/x"})
        assert evil.headers["location"] == "/console/overview"


def test_every_change_needs_the_sessions_csrf_token_and_the_consoles_origin(hub):
    with client(hub) as browser:
        log_in(browser, "dave")
        token = csrf_token(browser)
        assert browser.post("/console/logout").status_code == 403
        assert browser.post("/console/logout", data={"csrf_token": "x" * 43}).status_code == 403
        assert browser.post("/console/logout",
                            headers={"x-csrf-token": "wrong"}).status_code == 403
        other_origin = browser.post("/console/logout", data={"csrf_token": token},
                                    headers={"origin": "http://evil.example"})
        assert other_origin.status_code == 403
        assert "cross-origin" in other_origin.text
        assert browser.get("/console/api/session").status_code == 200  # still logged in
    with client(hub, origin=False) as bare:
        bare.cookies = browser.cookies
        assert bare.post("/console/logout", data={"csrf_token": token}).status_code == 403
        by_referer = bare.post("/console/logout", data={"csrf_token": token},
                               headers={"referer": f"{hub.hub_url}/console/overview"})
        assert by_referer.status_code == 303
        assert bare.get("/console/api/session").status_code == 401
    with client(hub) as browser:
        log_in(browser, "dave")
        assert browser.post("/console/logout",
                            headers={"x-csrf-token": csrf_token(browser)}).status_code == 303
        # A login from another site (login CSRF) is refused by its Origin.
        cross = browser.post("/console/login", data={"name": "dave", "password": PASSWORD},
                             headers={"origin": "http://evil.example"})
        assert cross.status_code == 403 and "meisitong_console" not in browser.cookies


def test_a_session_ends_at_logout_password_change_and_account_removal(hub):
    with client(hub) as browser:
        log_in(browser, "erin")
        kept = dict(browser.cookies)
        assert browser.post("/console/logout", data={"csrf_token": csrf_token(browser)}) \
            .headers["location"] == "/console/login"
    with client(hub) as replay:
        replay.cookies.update(kept)
        assert replay.get("/console/api/session").status_code == 401

    with client(hub) as browser, client(hub) as second:
        log_in(browser, "erin")
        log_in(second, "erin")
        assert second.get("/console/api/session").status_code == 200
        admins_command(hub, "passwd", "erin", "--password-stdin", password="a new passphrase")
        assert browser.get("/console/api/session").status_code == 401
        assert second.get("/console/api/session").status_code == 401
        assert log_in(browser, "erin").status_code == 401
        assert log_in(browser, "erin", "a new passphrase").status_code == 303
        admins_command(hub, "remove", "erin")
        assert browser.get("/console/api/session").status_code == 401
        assert log_in(browser, "erin", "a new passphrase").status_code == 401


def test_wrong_passwords_are_counted_and_then_every_attempt_waits(hub):
    with client(hub, source="127.0.0.3") as browser:
        for _ in range(5):
            assert log_in(browser, "carol", "guess guess guess").status_code == 401
        throttled = log_in(browser, "carol")  # the right password, but too soon
        assert throttled.status_code == 429 and "Too many failed logins" in throttled.text
        wait = int(throttled.headers["retry-after"])
        assert 1 <= wait <= 2
        time.sleep(wait + 0.2)
        assert log_in(browser, "carol").status_code == 303  # the wait is over, reset
        browser.cookies.clear()
        assert log_in(browser, "carol", "guess guess guess").status_code == 401
        assert log_in(browser, "carol").status_code == 303  # one failure is free again
    failures = [row for row in audit_rows(hub) if row["action"] == "console.login-failed"
                and row["subject"] == "carol"]
    assert len(failures) == 6  # the throttled attempt checked no password
    assert all(row["actor"] == "admin:carol" and row["detail"] == {"address": "127.0.0.3"}
               for row in failures)


def test_one_address_guessing_many_names_is_throttled_for_every_name(hub):
    with client(hub, source="127.0.0.4") as browser:
        for number in range(20):
            assert log_in(browser, f"nobody{number}", "guess guess guess").status_code == 401
        assert log_in(browser, "frank").status_code == 429
    with client(hub, source="127.0.0.5") as elsewhere:
        assert log_in(elsewhere, "frank").status_code == 303


async def test_guesses_sent_in_parallel_are_counted_before_any_is_checked(hub):
    """Ten wrong passwords at once: five are checked, the rest wait, even though none of
    the five had been answered when the others arrived."""
    answers: list[int] = []
    async with httpx.AsyncClient(
        base_url=hub.hub_url, headers={"origin": hub.hub_url}, timeout=60,
        transport=httpx.AsyncHTTPTransport(local_address="127.0.0.6"),
    ) as browser:

        async def guess() -> None:
            answer = await browser.post("/console/login",
                                        data={"name": "grace", "password": "guess guess"})
            answers.append(answer.status_code)

        async with trio.open_nursery() as nursery:
            for _ in range(10):
                nursery.start_soon(guess)
    assert sorted(answers) == [401] * 5 + [429] * 5


def test_forwarded_https_counts_only_from_a_trusted_proxy(hub):
    forwarded = {"x-forwarded-proto": "https", "x-forwarded-for": "198.51.100.7",
                 "origin": hub.hub_url.replace("http://", "https://")}
    with client(hub, source="127.0.0.2") as proxy:
        answer = proxy.post("/console/login", headers=forwarded,
                            data={"name": "audrey", "password": PASSWORD})
        assert answer.status_code == 303
        assert "Secure" in answer.headers["set-cookie"]
        assert "max-age" in answer.headers["strict-transport-security"]
        # The client saw HTTPS, so its Secure cookie comes back: sent by hand here.
        cookie = {"cookie": f"meisitong_console={answer.cookies['meisitong_console']}",
                  "x-forwarded-proto": "https"}
        page = proxy.get("/console/no-such-page", headers={**cookie, "accept": "text/html"})
        token = re.search(r'name="csrf-token" content="([^"]+)"', page.text).group(1)
        # Behind the proxy the console's origin is https://; plain http:// is another.
        refused = proxy.post("/console/logout", data={"csrf_token": token}, headers=cookie)
        assert refused.status_code == 403
        done = proxy.post("/console/logout", data={"csrf_token": token},
                          headers={**cookie, "origin": forwarded["origin"]})
        assert done.status_code == 303
    with client(hub) as direct:
        spoofed = direct.post("/console/login", headers={**forwarded, "origin": hub.hub_url},
                              data={"name": "audrey", "password": PASSWORD})
        assert spoofed.status_code == 303 and "Secure" not in spoofed.headers["set-cookie"]
    logins = [row for row in audit_rows(hub) if row["action"] == "console.login"
              and row["subject"] == "audrey"]
    assert [row["detail"]["address"] for row in logins] == ["198.51.100.7", "127.0.0.1"]


def test_logins_logouts_and_account_changes_are_audited_with_their_actor(hub):
    with client(hub) as browser:
        log_in(browser, "frank", "wrong wrong wrong")
        log_in(browser, "frank")
        browser.post("/console/logout", headers={"x-csrf-token": csrf_token(browser)})
    rows = audit_rows(hub)
    actions = [(row["actor"], row["action"], row["subject"]) for row in rows]
    for entry in [("admin:frank", "console.login-failed", "frank"),
                  ("admin:frank", "console.login", "frank"),
                  ("admin:frank", "console.logout", "frank")]:
        assert entry in actions
    cli = [row for row in rows if row["action"].startswith("admin.")]
    assert {(row["action"], row["subject"]) for row in cli} >= {
        ("admin.add", "alice"), ("admin.passwd", "erin"), ("admin.remove", "erin")}
    assert all(row["actor"].startswith("admin:") for row in cli)
    assert next(r for r in cli if r["subject"] == "audrey")["detail"] == {"role": "auditor"}
    assert all(PASSWORD not in json.dumps(row) for row in rows)
