"""The alarm engine's persisted state: ``DATA/alarms-state.sqlite``, committed at every transition.

One row per alarm that is not plainly normal (raised, waiting for acknowledgement, shelved, out of
service), and the last event's sequence number. After a restart the engine takes the rows back: an
active alarm stays active and acknowledged stays acknowledged, with no second ``raised`` event, so no
receiver notifies twice; the sequence continues where it stopped.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import astuple, dataclass, fields
from pathlib import Path

from meterhub.errors import StorageError

__all__ = ["AlarmRecord", "AlarmStateStore"]


@dataclass(slots=True)
class AlarmRecord:
    """What is kept of one alarm besides its definition.

    base : the ISA-18.2 state without overlays (``normal``, ``unack-active``, ``ack-active``,
        ``rtn-unack``). raised : the condition is latched active (raised and not yet cleared).
    since : when the current base state began [s since the epoch]. value, limit : at that moment, in the
        alarm's unit. acked_by, ack_comment : who acknowledged, why. shelved_until : when a shelve ends
        [s] (None: not shelved); shelved_by, shelve_comment. out_of_service : taken out of service by a
        user. last_notice : when it was raised or last reminded [s] (the reminder timer's origin).
    """

    alarm_id: str
    base: str = "normal"
    raised: bool = False
    since: float | None = None
    value: float | None = None
    limit: float | None = None
    acked_by: str | None = None
    ack_comment: str | None = None
    shelved_until: float | None = None
    shelved_by: str | None = None
    shelve_comment: str | None = None
    out_of_service: bool = False
    last_notice: float | None = None

    @property
    def plain(self) -> bool:
        """Nothing to keep: normal, not shelved, in service."""
        return (
            self.base == "normal"
            and not self.raised
            and self.shelved_until is None
            and not self.out_of_service
        )


_COLUMNS = [f.name for f in fields(AlarmRecord)]
_SCHEMA = """
CREATE TABLE IF NOT EXISTS alarm (
    alarm_id TEXT PRIMARY KEY, base TEXT NOT NULL, raised INTEGER NOT NULL, since REAL, value REAL,
    "limit" REAL, acked_by TEXT, ack_comment TEXT, shelved_until REAL, shelved_by TEXT,
    shelve_comment TEXT, out_of_service INTEGER NOT NULL, last_notice REAL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


class AlarmStateStore:
    """The SQLite file of the alarm states (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise StorageError(f"alarm state {self.path}: cannot open: {exc}") from None
        self._lock = threading.Lock()

    def load(self) -> tuple[int, dict[str, AlarmRecord]]:
        """The last sequence number and every kept record."""
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = 'seq'").fetchone()
            cols = ", ".join(f'"{c}"' for c in _COLUMNS)
            rows = self._db.execute(f"SELECT {cols} FROM alarm").fetchall()
        out: dict[str, AlarmRecord] = {}
        for r in rows:
            rec = AlarmRecord(*r)
            rec.raised, rec.out_of_service = bool(rec.raised), bool(rec.out_of_service)
            out[rec.alarm_id] = rec
        return (int(row[0]) if row else 0), out

    def save(self, records: list[AlarmRecord], seq: int) -> None:
        """Write ``records`` (a plain one is removed) and the sequence number in one transaction."""
        cols = ", ".join(f'"{c}"' for c in _COLUMNS)
        marks = ", ".join("?" for _ in _COLUMNS)
        with self._lock:
            try:
                self._db.execute("BEGIN")
                for rec in records:
                    if rec.plain:
                        self._db.execute("DELETE FROM alarm WHERE alarm_id = ?", (rec.alarm_id,))
                    else:
                        self._db.execute(
                            f"INSERT OR REPLACE INTO alarm ({cols}) VALUES ({marks})", astuple(rec)
                        )
                self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('seq', ?)", (seq,))
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._db.execute("ROLLBACK") if self._db.in_transaction else None
                raise StorageError(f"alarm state {self.path}: cannot write: {exc}") from None

    def remove(self, alarm_ids: list[str]) -> None:
        """Forget alarms whose rule is gone."""
        with self._lock:
            self._db.executemany("DELETE FROM alarm WHERE alarm_id = ?", [(a,) for a in alarm_ids])

    def close(self) -> None:
        with self._lock:
            self._db.close()
