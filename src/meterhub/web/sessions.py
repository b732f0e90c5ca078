"""Browser sessions kept in the data folder, so they survive a restart and are shared by processes.

A session is a 256-bit random id in the ``mh_session`` cookie. Only its SHA-256 is stored (the id is
random, so a fast hash is enough, as for API tokens): a copy of the file does not sign anyone in. Each
row holds the user name (the role is looked up live on every request), the CSRF token bound to the
session, when it was created and last seen, its idle timeout and its absolute end.

A session ends when it has been idle longer than ``idle`` [s], at ``created + lifetime`` [s] whatever
the activity, on sign-out, on "sign out everywhere", or when its user is removed or their password
changes (:func:`revoke_user_sessions`, called by :class:`meterhub.web.auth.UserStore`). Ended rows are
purged.

The store is SQLite (WAL) in ``DATA/sessions.sqlite`` next to ``users.json``; every operation opens
its own short connection, so threads and processes need no shared state.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "DEFAULT_IDLE",
    "DEFAULT_LIFETIME",
    "SESSIONS_FILE",
    "Session",
    "SessionInfo",
    "Sessions",
    "hash_session_id",
    "revoke_user_sessions",
]

SESSIONS_FILE = "sessions.sqlite"
DEFAULT_IDLE = 12 * 3600.0  # [s]
DEFAULT_LIFETIME = 7 * 24 * 3600.0  # [s]
#: last_seen is written at most this often per session, so polling pages do not write on every request [s]
TOUCH_INTERVAL = 60.0
#: expired rows are purged at most this often (and whenever a session is created) [s]
PURGE_INTERVAL = 600.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id_hash   TEXT PRIMARY KEY,  -- SHA-256 (hex) of the cookie value; the value itself is never stored
    username  TEXT NOT NULL,
    csrf      TEXT NOT NULL,
    created   REAL NOT NULL,     -- [s] Unix time
    last_seen REAL NOT NULL,     -- [s] Unix time
    idle      REAL NOT NULL,     -- idle timeout [s]
    ends      REAL NOT NULL      -- absolute end: created + lifetime [s] Unix time
);
CREATE INDEX IF NOT EXISTS sessions_username ON sessions (username);
"""


def hash_session_id(sid: str) -> str:
    """The stored key of a session id: SHA-256, hex."""
    return hashlib.sha256(sid.encode()).hexdigest()


@dataclass(frozen=True)
class Session:
    """A live session. ``id`` is the cookie value; it is only known to the request that carries it."""

    id: str
    username: str
    csrf: str
    created: float
    last_seen: float
    expires: float  # the earlier of the idle and the absolute end [s]


@dataclass(frozen=True)
class SessionInfo:
    """A session as listed to its user: no id, no CSRF token."""

    id_hash: str
    created: float
    last_seen: float
    expires: float


def _path(data_dir: Path) -> Path:
    return Path(data_dir) / SESSIONS_FILE


@contextmanager
def _connect(path: Path) -> Iterator[sqlite3.Connection]:
    with closing(sqlite3.connect(path, timeout=10.0, isolation_level=None)) as db:
        yield db


def _prepare(path: Path) -> None:
    """Create the file (owner-only) and the table if they are missing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    with _connect(path) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(_SCHEMA)


def revoke_user_sessions(data_dir: Path, username: str, *, keep: str | None = None) -> int:
    """End every session of ``username`` except the one whose cookie value is ``keep``; how many ended."""
    path = _path(data_dir)
    if not path.exists():
        return 0
    keep_hash = hash_session_id(keep) if keep else ""
    with _connect(path) as db:
        cur = db.execute("DELETE FROM sessions WHERE username = ? AND id_hash != ?", (username, keep_hash))
        return cur.rowcount


class Sessions:
    """Browser sessions of one data folder (``DATA/sessions.sqlite``).

    ``idle`` is the idle timeout and ``lifetime`` the absolute lifetime of a new session [s].
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        idle: float = DEFAULT_IDLE,
        lifetime: float = DEFAULT_LIFETIME,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not 0 < idle <= lifetime:
            raise ValueError(
                f"session idle timeout {idle} s must be > 0 and at most the lifetime {lifetime} s"
            )
        self.data_dir = Path(data_dir)
        self.path = _path(self.data_dir)
        self.idle = float(idle)
        self.lifetime = float(lifetime)
        self.clock = clock
        self._purged = -float("inf")
        _prepare(self.path)

    def create(self, username: str) -> Session:
        now = self.clock()
        self.purge()
        sid = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(24)
        ends = now + self.lifetime
        with _connect(self.path) as db:
            db.execute(
                "INSERT INTO sessions (id_hash, username, csrf, created, last_seen, idle, ends) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (hash_session_id(sid), username, csrf, now, now, self.idle, ends),
            )
        return Session(sid, username, csrf, now, now, min(now + self.idle, ends))

    def get(self, sid: str) -> Session | None:
        """The live session with cookie value ``sid`` (its idle timer restarts), else None."""
        if not sid:
            return None
        now = self.clock()
        if now - self._purged >= PURGE_INTERVAL:
            self.purge()
        key = hash_session_id(sid)
        with _connect(self.path) as db:
            row = db.execute(
                "SELECT username, csrf, created, last_seen, idle, ends FROM sessions WHERE id_hash = ?",
                (key,),
            ).fetchone()
            if row is None:
                return None
            username, csrf, created, last_seen, idle, ends = row
            if now >= ends or now >= last_seen + idle:
                db.execute("DELETE FROM sessions WHERE id_hash = ?", (key,))
                return None
            if now - last_seen >= TOUCH_INTERVAL:
                db.execute("UPDATE sessions SET last_seen = ? WHERE id_hash = ?", (now, key))
                last_seen = now
        return Session(sid, username, csrf, created, last_seen, min(last_seen + idle, ends))

    def end(self, sid: str) -> None:
        with _connect(self.path) as db:
            db.execute("DELETE FROM sessions WHERE id_hash = ?", (hash_session_id(sid),))

    def end_user(self, username: str, *, keep: str | None = None) -> int:
        """End every session of ``username`` except the one with id ``keep``; how many ended."""
        return revoke_user_sessions(self.data_dir, username, keep=keep)

    def of_user(self, username: str) -> list[SessionInfo]:
        """The live sessions of ``username``, most recently seen first."""
        self.purge()
        with _connect(self.path) as db:
            rows = db.execute(
                "SELECT id_hash, created, last_seen, idle, ends FROM sessions WHERE username = ? "
                "ORDER BY last_seen DESC",
                (username,),
            ).fetchall()
        return [SessionInfo(h, c, seen, min(seen + idle, ends)) for h, c, seen, idle, ends in rows]

    def purge(self) -> int:
        """Delete ended sessions; how many."""
        now = self.clock()
        self._purged = now
        with _connect(self.path) as db:
            cur = db.execute("DELETE FROM sessions WHERE ends <= ? OR last_seen + idle <= ?", (now, now))
            return cur.rowcount
