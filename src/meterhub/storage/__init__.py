"""meterhub.storage — time series of readings with rollups, retention and persisted registers.

:func:`open_storage` picks the backend named by the site's ``storage.backend``:

- ``sqlite`` (default): ``DATA_DIR/meterhub.db`` in WAL mode (:mod:`meterhub.storage.sqlite`);
- ``postgres``: ``storage.dsn``, monthly range partitions, TimescaleDB hypertables when the
  extension is available (:mod:`meterhub.storage.postgres`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from meterhub.config.schema import StorageConfig
from meterhub.storage.base import (
    HistoryColumns,
    HistoryPoint,
    Resolution,
    Storage,
    StorageError,
    StorageHealth,
    StorageState,
    StorageUnavailableError,
)
from meterhub.storage.rollup import RESOLUTIONS, auto_resolution
from meterhub.storage.sqlite import DB_FILE, SqliteStorage

__all__ = [
    "BACKENDS",
    "HistoryColumns",
    "HistoryPoint",
    "RESOLUTIONS",
    "Resolution",
    "Storage",
    "StorageError",
    "StorageHealth",
    "StorageState",
    "StorageUnavailableError",
    "auto_resolution",
    "open_storage",
]

Opener = Callable[[StorageConfig, Path, str | None, bool, bool], Storage]


def _open_sqlite(
    config: StorageConfig, data_dir: Path, timezone: str | None, spool: bool, read_only: bool
) -> Storage:
    storage = SqliteStorage(config, data_dir / DB_FILE, timezone=timezone, read_only=read_only)
    storage.data_dir = data_dir
    return storage


def _open_postgres(
    config: StorageConfig, data_dir: Path, timezone: str | None, spool: bool, read_only: bool
) -> Storage:
    # lazy: psycopg and its pool load only on a gateway that stores in PostgreSQL
    from meterhub.storage.postgres import PostgresStorage

    if not config.dsn:
        raise StorageError("storage.backend is 'postgres' but storage.dsn is not set")
    return PostgresStorage(
        config,
        config.dsn,
        timezone=timezone,
        data_dir=data_dir,
        spool=spool,
        read_only=read_only,
        spool_max_bytes=int(config.spool_max_mb * 1024**2) if config.spool_max_mb else None,
    )


#: Backend name (``storage.backend``) → opener.
BACKENDS: dict[str, Opener] = {"sqlite": _open_sqlite, "postgres": _open_postgres}


def open_storage(
    config: StorageConfig,
    data_dir: Path,
    *,
    timezone: str | None = None,
    spool: bool = True,
    read_only: bool = False,
) -> Storage:
    """Open (creating if needed) the storage a site's ``storage`` section describes.

    config : the ``storage`` section.
    data_dir : the data folder (SQLite puts ``meterhub.db`` there; PostgreSQL its outage spool,
        :mod:`meterhub.storage.spool`).
    timezone : the site's IANA time zone (``site.timezone``); day rollups follow its local days.
        None keeps the zone the database was last opened with (UTC for a new one); a different
        zone rebuilds the day rollups from the 15-minute ones.
    spool : PostgreSQL: spool flushes to the data folder while the server is away (the gateway);
        False makes a flush that cannot reach the server raise (``meterhub import``).
    read_only : open existing data for reading only (``meterhub report``): nothing is created or
        written, the day rollups keep the zone stored with the data (``timezone`` must be None),
        and a missing database is a :class:`StorageError`.

    A PostgreSQL server that cannot be reached does not make this fail: the storage starts spooling
    (see :class:`~meterhub.storage.postgres.PostgresStorage`) and connects when the server is back.
    """
    try:
        opener = BACKENDS[config.backend]
    except KeyError:
        raise StorageError(
            f"unknown storage backend {config.backend!r}; use one of {', '.join(BACKENDS)}"
        ) from None
    if read_only and timezone is not None:
        raise ValueError("a read-only storage keeps the time zone stored with the data; pass timezone=None")
    return opener(config, Path(data_dir), timezone, spool, read_only)
