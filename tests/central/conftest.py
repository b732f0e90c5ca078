"""Real components for the central tests: a private Mosquitto (own config: anonymous, or central's
password and ACL files) and a private PostgreSQL database created for the session and dropped after it,
one schema per test."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

MOSQUITTO = "/usr/sbin/mosquitto"
PG_ADMIN = os.environ.get("METERHUB_TEST_PG_ADMIN", "host=127.0.0.1 port=5432 user=postgres dbname=postgres")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


class Broker:
    """A Mosquitto of our own on ``port`` with persistence (sessions survive ``stop()``/``start()``) and
    no queue bounds; ``password_file``/``acl_file``: the files ``meterhub central provision`` writes."""

    def __init__(
        self, folder: Path, port: int, *, password_file: Path | None = None, acl_file: Path | None = None
    ) -> None:
        self.folder = folder
        self.port = port
        self.url = f"mqtt://127.0.0.1:{port}"
        lines = [
            f"listener {port} 127.0.0.1",
            "persistence true",
            f"persistence_location {folder}/",
            "autosave_interval 1",
            "max_queued_messages 0",
            "max_queued_bytes 0",
            "max_inflight_messages 0",
            "log_type error",
            "log_type warning",
            "log_type notice",
        ]
        if os.geteuid() == 0:
            lines.append("user root")
        if password_file is not None:
            lines += ["allow_anonymous false", f"password_file {password_file}"]
        else:
            lines.append("allow_anonymous true")
        if acl_file is not None:
            lines.append(f"acl_file {acl_file}")
        self.conf = folder / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = (self.folder / "mosquitto.log").open("ab")
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=log, stderr=log)
        deadline = time.monotonic() + 5
        while not _listening(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mosquitto did not start: {self.folder}/mosquitto.log")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    folder = tmp_path / "broker"
    folder.mkdir()
    b = Broker(folder, free_port())
    b.start()
    yield b
    b.stop()


@pytest.fixture(scope="session")
def central_db() -> Iterator[str]:
    """A private database on the machine's PostgreSQL: its DSN (dropped at the end of the session)."""
    name = f"mh_central_test_{os.getpid()}"
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL is not reachable: {exc}")
    admin.execute(f"DROP DATABASE IF EXISTS {name}")
    admin.execute(f"CREATE DATABASE {name}")
    base = " ".join(p for p in PG_ADMIN.split() if not p.startswith("dbname="))
    yield f"{base} dbname={name}"
    admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin.close()


@pytest.fixture
def dsn(central_db: str) -> Iterator[str]:
    """A fresh schema of the private database for one test."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(central_db, autocommit=True) as db:
        db.execute(f"CREATE SCHEMA {schema}")
    yield f"{central_db} options='-c search_path={schema}'"


def count(dsn: str, sql: str) -> int:
    """The integer the query gives; -1 for NULL or a table that does not exist yet."""
    with psycopg.connect(dsn) as db:
        try:
            row = db.execute(sql).fetchone()
        except psycopg.errors.UndefinedTable:
            return -1
        return int(row[0]) if row and row[0] is not None else -1


def value(dsn: str, sql: str) -> object:
    with psycopg.connect(dsn) as db:
        row = db.execute(sql).fetchone()
        return row[0] if row else None


def wait_until(predicate, timeout: float = 20.0, step: float = 0.1) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return bool(predicate())
