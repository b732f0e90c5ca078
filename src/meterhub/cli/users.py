"""``meterhub user add|list|passwd|remove|token`` — accounts of the web UI and API (issue 6).

Users live in ``DATA/users.json`` next to the gateway's database, so these commands work while the
gateway runs (it picks the change up on the next request). Passwords are read from the terminal
without echo, or from standard input with ``--password-stdin`` (for scripts).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from meterhub.cli._app import app
from meterhub.errors import InputError, NotFoundError
from meterhub.model.readings import iso_utc
from meterhub.web.auth import AuthError, Role, UserStore

__all__ = ["user_app"]

console = Console()
err = Console(stderr=True)
user_app = typer.Typer(
    help="Manage users (admin, reader) and API tokens of the web UI and API.", no_args_is_help=True
)
token_app = typer.Typer(help="API tokens for machines (Authorization: Bearer …).", no_args_is_help=True)
user_app.add_typer(token_app, name="token")
app.add_typer(user_app, name="user")

DataOpt = Annotated[Path, typer.Option("--data", help="Data folder of the gateway.")]
DEFAULT_DATA = Path("data")


def _store(data: Path) -> UserStore:
    try:
        return UserStore(data)
    except AuthError as exc:
        raise InputError(str(exc)) from None


def _password(password_stdin: bool, *, confirm: bool = True) -> str:
    if password_stdin:
        return sys.stdin.readline().rstrip("\n")
    pw: str = typer.prompt("Password", hide_input=True, confirmation_prompt=confirm)
    return pw


@user_app.command("add")
def add(
    username: Annotated[str, typer.Argument(help="User name (a–z, 0–9, _ . @ -).")],
    role: Annotated[
        Role, typer.Option("--role", help="admin configures and manages users; reader views.")
    ] = Role.READER,
    data: DataOpt = DEFAULT_DATA,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from stdin.")
    ] = False,
) -> None:
    """Add a user."""
    store = _store(data)
    store.add(username, _password(password_stdin), role)
    (data / "setup-token").unlink(missing_ok=True)  # the first-run token is no longer needed
    console.print(f"added {role.value} [bold]{username}[/] to {store.path}")


@user_app.command("list")
def list_users(data: DataOpt = DEFAULT_DATA) -> None:
    """List users and their roles."""
    store = _store(data)
    users = store.users()
    if not users:
        console.print(f"no users in {data}; the gateway asks for the first admin at start (setup token)")
        return
    t = Table("user", "role", "created", "tokens")
    for u in users:
        t.add_row(u.username, u.role.value, iso_utc(u.created), str(len(store.tokens(u.username))))
    console.print(t)


@user_app.command("passwd")
def passwd(
    username: str,
    data: DataOpt = DEFAULT_DATA,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from stdin.")
    ] = False,
) -> None:
    """Set a user's password (signs them out of the web UI everywhere)."""
    store = _store(data)
    if store.get(username) is None:
        raise NotFoundError(f"unknown user {username!r}")
    store.update(username, password=_password(password_stdin))
    console.print(f"password of [bold]{username}[/] changed")


@user_app.command("role")
def set_role(username: str, role: Role, data: DataOpt = DEFAULT_DATA) -> None:
    """Change a user's role."""
    try:
        _store(data).update(username, role=role)
    except KeyError:
        raise NotFoundError(f"unknown user {username!r}") from None
    except AuthError:
        raise
    console.print(f"[bold]{username}[/] is now {role.value}")


@user_app.command("remove")
def remove(username: str, data: DataOpt = DEFAULT_DATA) -> None:
    """Remove a user, their API tokens and their web sessions."""
    try:
        _store(data).remove(username)
    except KeyError:
        raise NotFoundError(f"unknown user {username!r}") from None
    except AuthError:
        raise
    console.print(f"removed [bold]{username}[/]")


@token_app.command("create")
def token_create(
    username: Annotated[str, typer.Argument(help="The user the token acts for.")],
    name: Annotated[str, typer.Option("--name", help="What the token is for, e.g. 'scada'.")],
    role: Annotated[Role | None, typer.Option("--role", help="Default: the user's role.")] = None,
    data: DataOpt = DEFAULT_DATA,
) -> None:
    """Create an API token; the secret is printed once."""
    try:
        tok, secret = _store(data).create_token(username, name, role)
    except KeyError:
        raise NotFoundError(f"unknown user {username!r}") from None
    except AuthError:
        raise
    err.print(f"token {tok.id} ({tok.role.value}) for {username}; keep the secret, it is not shown again:")
    print(secret)


@token_app.command("list")
def token_list(data: DataOpt = DEFAULT_DATA) -> None:
    """List API tokens (never their secrets)."""
    t = Table("id", "name", "user", "role", "created", "last used")
    for tok in _store(data).tokens():
        t.add_row(
            tok.id,
            tok.name,
            tok.username,
            tok.role.value,
            iso_utc(tok.created),
            iso_utc(tok.last_used) if tok.last_used else "–",
        )
    console.print(t)


@token_app.command("revoke")
def token_revoke(token_id: str, data: DataOpt = DEFAULT_DATA) -> None:
    """Revoke an API token."""
    try:
        _store(data).revoke_token(token_id)
    except KeyError:
        raise NotFoundError(f"unknown token {token_id!r}") from None
    console.print(f"revoked token {token_id}")
