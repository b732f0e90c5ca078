"""``meterhub user …`` commands against a data folder (the real typer app, in-process; one subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from meterhub.cli import app
from meterhub.web.auth import UserStore

EXE = [str(Path(sys.executable).parent / "meterhub")]


class Result:
    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def run(*args: str, stdin: str = "") -> Result:
    r = CliRunner().invoke(app, ["user", *args], input=stdin)
    return Result(r.exit_code, r.stdout, r.stderr)


def test_the_installed_command_adds_a_user(tmp_path: Path) -> None:
    r = subprocess.run(
        [*EXE, "user", "add", "ops", "--role", "admin", "--data", str(tmp_path), "--password-stdin"],
        input="ops password\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert UserStore(tmp_path).verify("ops", "ops password") is not None


def test_add_list_passwd_remove(tmp_path: Path) -> None:
    data = str(tmp_path)
    (tmp_path / "setup-token").write_text("abc\n")
    r = run("add", "alice", "--role", "admin", "--data", data, "--password-stdin", stdin="first password\n")
    assert r.returncode == 0, r.stderr
    assert not (tmp_path / "setup-token").exists()
    assert run("add", "bob", "--data", data, "--password-stdin", stdin="short\n").returncode == 2
    assert run("add", "bob", "--data", data, "--password-stdin", stdin="bobs password\n").returncode == 0
    listing = run("list", "--data", data).stdout
    assert "alice" in listing and "admin" in listing and "bob" in listing and "reader" in listing
    assert (
        run("passwd", "alice", "--data", data, "--password-stdin", stdin="second password\n").returncode == 0
    )
    store = UserStore(tmp_path)
    assert store.verify("alice", "second password") is not None
    assert store.verify("alice", "first password") is None
    removed = run("remove", "alice", "--data", data)
    assert removed.returncode == 2 and "last admin" in removed.stderr
    assert run("remove", "bob", "--data", data).returncode == 0
    assert [u.username for u in UserStore(tmp_path).users()] == ["alice"]


def test_token_create_prints_secret_once_and_stores_only_its_hash(tmp_path: Path) -> None:
    data = str(tmp_path)
    run("add", "svc", "--data", data, "--password-stdin", stdin="service password\n")
    r = run("token", "create", "svc", "--name", "scada", "--data", data)
    assert r.returncode == 0, r.stderr
    secret = r.stdout.strip()
    assert secret.startswith("mh_")
    stored = json.loads((tmp_path / "users.json").read_text())
    assert secret not in json.dumps(stored)
    tok = UserStore(tmp_path).find_token(secret)
    assert tok is not None and tok.role.value == "reader"
    assert run("token", "create", "svc", "--name", "x", "--role", "admin", "--data", data).returncode == 2
    assert run("token", "revoke", tok.id, "--data", data).returncode == 0
    assert UserStore(tmp_path).find_token(secret) is None
