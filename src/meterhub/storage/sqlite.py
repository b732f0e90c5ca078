"""SQLite backend: one file ``DATA_DIR/meterhub.db`` in WAL mode (the default, embedded storage).

Raw values and rollups live in ``WITHOUT ROWID`` tables clustered on (series, ts) so a history query
is one range scan and a point costs no separate rowid index. ``synchronous=NORMAL`` in WAL mode
keeps every committed flush across a process crash; only a power cut can lose the last commits
(https://www.sqlite.org/pragma.html#pragma_synchronous).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from meterhub.config.schema import StorageConfig
from meterhub.storage.base import StorageError
from meterhub.storage.events import SQLITE_DDL as _EVENTS_DDL
from meterhub.storage.relational import ROLLUP_TABLES, SqlStorage

__all__ = ["SqliteStorage", "DB_FILE"]

DB_FILE = "meterhub.db"

_ROLLUP_DDL = """
CREATE TABLE IF NOT EXISTS {table} (
    series INTEGER NOT NULL,
    bucket INTEGER NOT NULL,
    n INTEGER NOT NULL,
    vsum REAL NOT NULL,
    vmin REAL NOT NULL,
    vmax REAL NOT NULL,
    vlast REAL NOT NULL,
    last_ts INTEGER NOT NULL,
    quality INTEGER NOT NULL,
    delta REAL NOT NULL,
    PRIMARY KEY (series, bucket)
) WITHOUT ROWID;
"""

_DDL = (
    """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY,
    circuit TEXT NOT NULL,
    quantity TEXT NOT NULL,
    phase TEXT NOT NULL,
    UNIQUE (circuit, quantity, phase)
);
CREATE TABLE IF NOT EXISTS raw (
    series INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    value REAL,
    quality INTEGER NOT NULL,
    PRIMARY KEY (series, ts)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS registers (
    series INTEGER PRIMARY KEY,
    value REAL NOT NULL,
    ts REAL
);
CREATE TABLE IF NOT EXISTS computed_registers (
    circuit TEXT NOT NULL,
    quantity TEXT NOT NULL,
    phase TEXT NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY (circuit, quantity, phase)
);
"""
    + "".join(_ROLLUP_DDL.format(table=t) for t in ROLLUP_TABLES.values())
    + _EVENTS_DDL
)


class SqliteStorage(SqlStorage):
    """The embedded backend.

    config : the site's ``storage`` section.
    path : the database file (``DATA_DIR/meterhub.db``).
    timezone : IANA zone of the site's days (day rollups); None keeps the database's (UTC if new).
    """

    def __init__(
        self, config: StorageConfig, path: Path, *, timezone: str | None = None, read_only: bool = False
    ) -> None:
        super().__init__(config, timezone=timezone, read_only=read_only)
        self.path = path
        if read_only:
            self._db = self._open_read_only(path)
            self._check_meta()
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # The lock in SqlStorage serialises use, so a reader thread (the web API) may share it.
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.execute("PRAGMA cache_size=-32000")  # 32 MiB
            # Checkpoint every ~40 MB of WAL: each flush rewrites the newest page of every series, and
            # a checkpoint copies such a page once however often it was rewritten.
            self._db.execute("PRAGMA wal_autocheckpoint=10000")
            self._db.executescript(_DDL)
        except sqlite3.Error as exc:
            raise StorageError(f"{path}: cannot open the SQLite database: {exc}") from exc
        self._check_meta()

    @staticmethod
    def _open_read_only(path: Path) -> sqlite3.Connection:
        """A connection that cannot write (``mode=ro``): reports read a running gateway's data."""
        if not path.is_file():
            raise StorageError(f"{path}: no meterhub database (run the gateway or 'meterhub import' first)")
        try:
            db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)
            db.execute("PRAGMA busy_timeout=5000")
            db.execute("PRAGMA query_only=ON")
            db.execute("SELECT 1 FROM meta LIMIT 1").fetchall()
        except sqlite3.Error as exc:
            raise StorageError(f"{path}: cannot read the meterhub database: {exc}") from exc
        return db

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        try:
            return self._db.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise StorageError(f"{self.path}: {exc}") from exc

    def _executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        try:
            self._db.executemany(sql, rows)
        except sqlite3.Error as exc:
            raise StorageError(f"{self.path}: {exc}") from exc

    def _begin(self) -> None:
        self._execute("BEGIN" if self.read_only else "BEGIN IMMEDIATE")

    def _commit(self) -> None:
        self._execute("COMMIT")

    def _rollback(self) -> None:
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")

    def _close_connection(self) -> None:
        self._db.close()

    def size_bytes(self) -> int:
        """Size of the database file and its WAL [B]."""
        wal = self.path.with_name(self.path.name + "-wal")
        return self.path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)
