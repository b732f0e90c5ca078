"""Real components for the central tests: a private Mosquitto (own config: anonymous, or central's
password and ACL files) and a private PostgreSQL database created for the session and dropped after it,
one schema per test."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from ..publish.conftest import Broker as PublishBroker
from ..publish.conftest import free_port

__all__ = ["Broker", "free_port"]

PG_ADMIN = os.environ.get("METERHUB_TEST_PG_ADMIN", "host=127.0.0.1 port=5432 user=postgres dbname=postgres")


class Broker(PublishBroker):
    """The publish tests' Mosquitto, persistent (sessions survive ``stop()``/``start()``, no queue bounds)
    and with no bound on messages in flight to a worker; ``password_file``/``acl_file``: the files
    ``meterhub central provision`` writes."""

    def __init__(
        self, folder: Path, port: int, *, password_file: Path | None = None, acl_file: Path | None = None
    ) -> None:
        super().__init__(folder, port, persistent=True, password_file=password_file, acl_file=acl_file)
        with self.conf.open("a") as conf:
            conf.write("max_inflight_messages 0\n")


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
