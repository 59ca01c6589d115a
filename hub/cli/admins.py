"""`meisitong-hub admins …`: the web console's accounts (admins and read-only auditors)."""

from __future__ import annotations

import sys

import click
from rich.table import Table

from hub.cli.common import (
    admin_actor,
    console,
    emit_json,
    friendly_errors,
    hub_dir_option,
    json_option,
    open_database,
)
from hub.errors import AdminAccountError

ROLE_CHOICE = click.Choice(["admin", "auditor"])


def password_stdin_option(command):  # type: ignore[no-untyped-def]
    return click.option(
        "--password-stdin", is_flag=True,
        help="read the password from the first line of standard input instead of prompting",
    )(command)


def read_password(from_stdin: bool) -> str:
    """The new password: typed twice at a hidden prompt, or one line of stdin."""
    if from_stdin:
        line = sys.stdin.readline()
        if not line:
            raise AdminAccountError("--password-stdin: standard input is empty")
        return line.rstrip("\r\n")
    password: str = click.prompt("Password", hide_input=True, confirmation_prompt=True,
                                 err=True)
    return password


@click.group()
def admins() -> None:
    """Web console accounts: an admin may change things, an auditor only reads."""


@admins.command("add")
@hub_dir_option
@click.argument("name")
@click.option("--role", type=ROLE_CHOICE, required=True)
@password_stdin_option
@friendly_errors
def admins_add(hub_dir: str | None, name: str, role: str, password_stdin: bool) -> None:
    """Create the console account NAME with ROLE and a password."""
    from hub.console.admin_accounts import add_admin, check_name

    check_name(name)  # before asking for a password
    with open_database(hub_dir) as database:
        add_admin(database, name, role, read_password(password_stdin), admin_actor())
    console.print(f"console account {name} ({role}) created")


@admins.command("list")
@hub_dir_option
@json_option
@friendly_errors
def admins_list(hub_dir: str | None, as_json: bool) -> None:
    """Every console account with its role (never a password hash)."""
    from hub.console.admin_accounts import list_admins

    with open_database(hub_dir) as database:
        rows = list_admins(database)
    if as_json:
        emit_json(rows)
        return
    if not rows:
        console.print("no console accounts yet: `meisitong-hub admins add NAME --role admin`")
        return
    table = Table("name", "role", "created", "password changed")
    for row in rows:
        table.add_row(row["name"], row["role"], row["created_at"], row["password_changed_at"])
    console.print(table)


@admins.command("remove")
@hub_dir_option
@click.argument("name")
@friendly_errors
def admins_remove(hub_dir: str | None, name: str) -> None:
    """Delete the console account NAME and end its sessions."""
    from hub.console.admin_accounts import remove_admin

    with open_database(hub_dir) as database:
        remove_admin(database, name, admin_actor())
    console.print(f"console account {name} removed; its sessions are ended")


@admins.command("passwd")
@hub_dir_option
@click.argument("name")
@password_stdin_option
@friendly_errors
def admins_passwd(hub_dir: str | None, name: str, password_stdin: bool) -> None:
    """Set a new password for NAME; its sessions end (it logs in again)."""
    from hub.console.admin_accounts import set_password

    with open_database(hub_dir) as database:
        set_password(database, name, read_password(password_stdin), admin_actor())
    console.print(f"password of {name} changed; its sessions are ended")
