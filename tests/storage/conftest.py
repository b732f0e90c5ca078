"""Storage fixtures: the same tests run against SQLite and the PostgreSQL server on this machine.

``storage_spec`` describes one backend (``.open(timezone=...)`` opens a fresh handle on the same data,
e.g. to test a restart); ``storage_backend`` is an opened :class:`~meterhub.storage.Storage`. Each
PostgreSQL test gets its own schema, dropped afterwards, so tests run in parallel (pytest -n auto).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from meterhub.config.schema import StorageConfig
from meterhub.storage import Storage, open_storage

PG_DSN = os.environ.get("METERHUB_TEST_PG_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=test")


def _pg_admin() -> Any:
    import psycopg

    try:
        return psycopg.connect(PG_DSN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL at {PG_DSN!r} is unreachable: {str(exc).strip()}")


@dataclass
class BackendSpec:
    """One storage backend on fresh, private data."""

    name: str
    data_dir: Path
    dsn: str | None = None
    opened: list[Storage] = field(default_factory=list)

    def config(self, **overrides: Any) -> StorageConfig:
        return StorageConfig(backend=self.name, dsn=self.dsn, **overrides)  # type: ignore[arg-type]

    def open(self, *, timezone: str = "UTC", **overrides: Any) -> Storage:
        storage = open_storage(self.config(**overrides), self.data_dir, timezone=timezone)
        self.opened.append(storage)
        return storage


@contextlib.contextmanager
def _postgres_spec(tmp_path: Path) -> Iterator[BackendSpec]:
    schema = f"mh_test_{uuid.uuid4().hex[:12]}"
    admin = _pg_admin()
    admin.execute(f"CREATE SCHEMA {schema}")
    spec = BackendSpec("postgres", tmp_path, dsn=f"{PG_DSN} options='-c search_path={schema}'")
    try:
        yield spec
    finally:
        for s in spec.opened:
            _quiet_close(s)
        admin.execute(f"DROP SCHEMA {schema} CASCADE")
        admin.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def storage_spec(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BackendSpec]:
    """Each backend in turn, on fresh data."""
    if request.param == "sqlite":
        spec = BackendSpec("sqlite", tmp_path)
        yield spec
        for s in spec.opened:
            _quiet_close(s)
        return
    with _postgres_spec(tmp_path) as spec:
        yield spec


@pytest.fixture
def postgres_spec(tmp_path: Path) -> Iterator[BackendSpec]:
    """PostgreSQL only (for layout tests); skipped when the server is unreachable."""
    with _postgres_spec(tmp_path) as spec:
        yield spec


@pytest.fixture
def storage_backend(storage_spec: BackendSpec) -> Storage:
    """An opened storage (UTC days) on fresh data; closed after the test."""
    return storage_spec.open()


def _quiet_close(storage: Storage) -> None:
    try:
        storage.close()
    except Exception:  # already closed by the test
        pass
