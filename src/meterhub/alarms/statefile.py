"""A small durable key → JSON store in the data folder, for what a restart must not forget.

Used by the notifier's email rate limit (``DATA/notify-state.sqlite``: the mails each recipient got in the
last hour, :mod:`meterhub.alarms.smtp`) and by the control path (``DATA/control-state.sqlite``: each
output's last change and a user's manual override, :mod:`meterhub.alarms.control`). SQLite in WAL mode
with ``synchronous=FULL``: a value is on disk when :meth:`StateFile.set` returns. Writes are rare (one per
mail, one per output change), so they happen on the caller's thread.

A file that cannot be opened or written never stops the caller: :attr:`StateFile.error` says why (the
owner shows it in its health) and the values are kept in memory only.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["StateFile"]

log = logging.getLogger("meterhub.alarms")


class StateFile:
    """Key → JSON value, committed per :meth:`set` (see the module docstring). ``name`` is how logs and
    health name it (e.g. ``notify state``)."""

    def __init__(self, path: Path, name: str) -> None:
        self.path = Path(path)
        self.name = name
        self.error: str | None = None
        self._lock = threading.Lock()
        self._values: dict[str, Any] = {}
        self._db: sqlite3.Connection | None = None
        try:
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            for key, text in db.execute("SELECT key, value FROM state"):
                try:
                    self._values[key] = json.loads(text)
                except ValueError:
                    log.error("%s: %s: the value of %r cannot be read; ignored", self.name, self.path, key)
            self._db = db
        except sqlite3.Error as exc:
            self._fail(f"cannot open {self.path}: {exc}")

    def _fail(self, why: str) -> None:
        if self.error != why:
            log.error("%s: %s; kept in memory only", self.name, why)
        self.error = why

    def get(self, key: str, default: Any = None) -> Any:
        return self._values.get(key, default)

    def items(self, prefix: str = "") -> Iterator[tuple[str, Any]]:
        """Every ``(key, value)`` whose key starts with ``prefix``."""
        return ((k, v) for k, v in list(self._values.items()) if k.startswith(prefix))

    def set(self, key: str, value: Any) -> None:
        """Store ``value`` (JSON-ready) under ``key``; on disk when this returns (unless :attr:`error`)."""
        self._values[key] = value
        self._write("INSERT OR REPLACE INTO state (key, value) VALUES (?, ?)", (key, json.dumps(value)))

    def delete(self, key: str) -> None:
        if self._values.pop(key, None) is not None:
            self._write("DELETE FROM state WHERE key = ?", (key,))

    def _write(self, sql: str, args: tuple[str, ...]) -> None:
        if self._db is None:
            return
        with self._lock:
            try:
                self._db.execute(sql, args)
                self.error = None
            except sqlite3.Error as exc:
                self._fail(f"cannot write {self.path}: {exc}")

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
