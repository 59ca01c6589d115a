"""The console's parts without a server: accounts and their argon2id hashes, session
expiry on a given clock, the login throttle's backoff, where a login may send the
browser, and the `admins` commands."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher
from click.testing import CliRunner

from hub.cli.main import main
from hub.console.admin_accounts import (
    add_admin,
    list_admins,
    remove_admin,
    set_password,
    verify_login,
)
from hub.console.login import safe_next
from hub.console.login_throttle import LoginThrottle
from hub.console.sessions import (
    SessionPolicy,
    find_session,
    forget_expired,
    open_session,
)
from hub.database import HubDatabase
from hub.errors import AdminAccountError
from hub.hub_dir import HubDir

PASSWORD = "correct horse battery"
POLICY = SessionPolicy(idle_seconds=600, lifetime_seconds=3600)


@pytest.fixture
def database(initialized_hub_dir):
    opened = HubDatabase(HubDir(initialized_hub_dir).database)
    yield opened
    opened.close()


def test_passwords_are_stored_as_argon2id_hashes_and_checked_against_them(database):
    add_admin(database, "alice", "admin", PASSWORD, "admin:root")
    stored = database.query("SELECT password_hash FROM console_admins")[0][0]
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    assert verify_login(database, "alice", PASSWORD).role == "admin"
    assert verify_login(database, "alice", PASSWORD + "x") is None
    assert verify_login(database, "nobody", PASSWORD) is None
    assert verify_login(database, "../Alice", PASSWORD) is None
    assert list_admins(database)[0].keys() == {"name", "role", "created_at",
                                               "password_changed_at"}


def test_a_hash_made_with_weaker_parameters_is_rehashed_at_login(database):
    add_admin(database, "alice", "admin", PASSWORD, "admin:root")
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
    with database.transaction() as db:
        db.execute("UPDATE console_admins SET password_hash = ?", (weak,))
    assert verify_login(database, "alice", PASSWORD) is not None
    stored = database.query("SELECT password_hash FROM console_admins")[0][0]
    assert stored != weak and "m=65536" in stored


def test_bad_names_roles_passwords_and_duplicates_are_refused_with_nothing_written(database):
    for name, role, password, message in [
        ("Alice", "admin", PASSWORD, "admin name 'Alice'"),
        ("alice", "root", PASSWORD, "role 'root'"),
        ("alice", "admin", "short", "password too short"),
    ]:
        with pytest.raises(AdminAccountError, match=message):
            add_admin(database, name, role, password, "admin:root")
    assert list_admins(database) == []
    add_admin(database, "alice", "auditor", PASSWORD, "admin:root")
    with pytest.raises(AdminAccountError, match="exists already"):
        add_admin(database, "alice", "admin", PASSWORD, "admin:root")
    with pytest.raises(AdminAccountError, match="no admin named 'bob'"):
        set_password(database, "bob", PASSWORD, "admin:root")
    with pytest.raises(AdminAccountError, match="no admin named 'bob'"):
        remove_admin(database, "bob", "admin:root")
    assert [row["role"] for row in list_admins(database)] == ["auditor"]


def test_a_session_ends_after_its_idle_time_or_its_lifetime_whichever_comes_first(database):
    add_admin(database, "alice", "admin", PASSWORD, "admin:root")
    idle = open_session(database, "alice", "127.0.0.1", now=1000.0)
    assert find_session(database, idle, POLICY, now=1599.0) is not None
    assert find_session(database, idle, POLICY, now=1599.0 + 601) is None
    assert find_session(database, idle, POLICY, now=1600.0) is None  # deleted on expiry

    busy = open_session(database, "alice", "127.0.0.1", now=1000.0)
    for now in range(1060, 4720, 60):  # used every minute for an hour and more
        alive = find_session(database, busy, POLICY, now=float(now))
        assert (alive is not None) == (now - 1000 <= 3600), now
    stored = database.query("SELECT id_sha256 FROM console_sessions")
    assert busy not in [row[0] for row in stored]  # only its hash is kept

    stale = open_session(database, "alice", "127.0.0.1", now=1000.0)
    assert forget_expired(database, POLICY, now=5000.0) == 1
    assert find_session(database, stale, POLICY, now=1001.0) is None


def test_a_session_follows_its_accounts_role_and_ends_with_its_password(database):
    add_admin(database, "alice", "admin", PASSWORD, "admin:root")
    session_id = open_session(database, "alice", "127.0.0.1", now=1000.0)
    session = find_session(database, session_id, POLICY, now=1001.0)
    assert session and session.role == "admin" and len(session.csrf_token) >= 40
    other = open_session(database, "alice", "127.0.0.1", now=1000.0)
    assert find_session(database, other, POLICY, 1001.0).csrf_token != session.csrf_token
    set_password(database, "alice", "another long password", "admin:root")
    assert find_session(database, session_id, POLICY, now=1002.0) is None
    assert find_session(database, other, POLICY, now=1002.0) is None


def test_the_throttle_lets_a_few_failures_pass_then_doubles_the_wait():
    now = [0.0]
    throttle = LoginThrottle(account_free_failures=5, address_free_failures=20,
                             max_delay=60, clock=lambda: now[0])
    for _ in range(4):
        throttle.failed("alice", "10.0.0.1")
        assert throttle.wait_seconds("alice", "10.0.0.1") == 0
    waits = []
    for _ in range(7):
        throttle.failed("alice", "10.0.0.1")
        waits.append(throttle.wait_seconds("alice", "10.0.0.1"))
        now[0] += waits[-1]
    assert waits == [2, 4, 8, 16, 32, 60, 60]
    assert throttle.wait_seconds("alice", "10.0.0.2") == 0  # the account is not locked out
    throttle.failed("alice", "10.0.0.2")
    assert throttle.wait_seconds("alice", "10.0.0.2") == 60  # ... but every guess waits
    assert throttle.wait_seconds("bob", "10.0.0.1") == 0
    throttle.succeeded("alice", "10.0.0.2")
    assert throttle.wait_seconds("alice", "10.0.0.3") == 0


def test_the_throttle_slows_one_address_guessing_many_names_and_stays_bounded():
    now = [0.0]
    throttle = LoginThrottle(address_free_failures=20, max_entries=100, clock=lambda: now[0])
    for number in range(20):
        throttle.failed(f"name{number}", "10.0.0.9")
    assert throttle.wait_seconds("somebody", "10.0.0.9") == 2
    assert throttle.wait_seconds("somebody", "10.0.0.10") == 0
    for number in range(500):
        throttle.failed(f"spray{number}", f"10.1.{number // 250}.{number % 250}")
    assert len(throttle._failures) <= 101


@pytest.mark.parametrize("target", [None, "", "/elsewhere", "//evil.example/console/x",
                                    "https://evil.example/", "/console//evil.example",
                                    "/console/login?next=/x", "/console\\..\\x"])
def test_a_login_sends_the_browser_only_to_a_console_page(target):
    assert safe_next(target) == "/console/overview"


def test_a_login_keeps_a_console_page_and_its_query():
    assert safe_next("/console/devices?group=lab") == "/console/devices?group=lab"


def test_admins_commands_prompt_twice_and_fail_with_one_line(initialized_hub_dir):
    runner = CliRunner()
    base = ["--dir", str(initialized_hub_dir)]
    added = runner.invoke(main, ["admins", "add", "alice", "--role", "admin", *base],
                          input=f"{PASSWORD}\n{PASSWORD}\n")
    assert added.exit_code == 0, added.output
    mismatch = runner.invoke(main, ["admins", "add", "bob", "--role", "auditor", *base],
                             input=f"{PASSWORD}\nsomething else entirely\n")
    assert mismatch.exit_code != 0
    listed = runner.invoke(main, ["admins", "list", "--json", *base])
    assert '"name": "alice"' in listed.output and "bob" not in listed.output
    assert "argon2" not in listed.output
    empty = runner.invoke(main, ["admins", "passwd", "alice", "--password-stdin", *base],
                          input="")
    assert empty.exit_code == 1 and "standard input is empty" in empty.output
    assert "Traceback" not in empty.output
    removed = runner.invoke(main, ["admins", "remove", "alice", *base])
    assert removed.exit_code == 0
    again = runner.invoke(main, ["admins", "remove", "alice", *base])
    assert again.exit_code == 1 and "no admin named 'alice'" in again.output
