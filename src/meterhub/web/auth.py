"""Users, roles, sessions, API tokens and the first-run setup token.

Two roles (issue 6): ``admin`` configures, controls and manages users; ``reader`` views. There is no
default password: while no user exists, a one-time setup token is kept in ``DATA/setup-token`` (mode
0600) and printed at start (:func:`setup_banner`); ``POST /api/v1/setup`` with that token creates the
first admin and deletes the token.

* Passwords are hashed with argon2id (argon2-cffi defaults, RFC 9106 "low memory" profile).
* Browser sessions: a random id in an HttpOnly, SameSite=Strict cookie; unsafe methods must echo the
  session's CSRF token in ``X-CSRF-Token`` (it is also readable by scripts in the ``mh_csrf`` cookie).
* Machines use API tokens (``Authorization: Bearer mh_…``); only their SHA-256 is stored — they are
  256-bit random, so a fast hash is enough.
* Wrong passwords are throttled per account and address with bounded exponential backoff
  (:class:`LoginLimiter`), so a stranger cannot lock the real user out from elsewhere.

Users and tokens live in ``DATA/users.json`` (written atomically); sessions live in
``DATA/sessions.sqlite`` (:mod:`meterhub.web.sessions`: only the SHA-256 of a session id is stored),
so they survive a restart and are shared by processes using the same data folder. Removing a user or
changing their password ends their sessions.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import os
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import HTTPException, Request
from starlette.requests import HTTPConnection

from meterhub.errors import ConflictError, InputError, PermissionDeniedError
from meterhub.web.sessions import DEFAULT_IDLE, DEFAULT_LIFETIME, Session, Sessions, revoke_user_sessions

__all__ = [
    "AuthError",
    "AuthState",
    "LastAdminError",
    "LoginLimiter",
    "Principal",
    "Role",
    "RoleError",
    "SESSION_COOKIE",
    "CSRF_COOKIE",
    "Session",
    "Sessions",
    "User",
    "UserExistsError",
    "UserStore",
    "address_key",
    "backoff",
    "consume_setup_token",
    "ensure_setup_token",
    "require_admin",
    "require_live",
    "require_reader",
    "setup_banner",
]

SESSION_COOKIE = "mh_session"
CSRF_COOKIE = "mh_csrf"
CSRF_HEADER = "x-csrf-token"
USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.@-]{0,63}$")
MIN_PASSWORD = 8
SETUP_FILE = "setup-token"
USERS_FILE = "users.json"
TOKEN_PREFIX = "mh_"
_SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}

_hasher = PasswordHasher()


class AuthError(InputError, ValueError):
    """A user or token operation that cannot be done (message says why): a bad name, password or
    user file (422); its subclasses below are conflicts and permission refusals."""


class UserExistsError(AuthError, ConflictError):
    """A new user whose name is taken."""

    http_status = ConflictError.http_status


class LastAdminError(AuthError, ConflictError):
    """Removing or demoting the only admin."""

    http_status = ConflictError.http_status


class RoleError(AuthError, PermissionDeniedError):
    """A reader asking for an admin token."""

    http_status = PermissionDeniedError.http_status


class Role(StrEnum):
    ADMIN = "admin"
    READER = "reader"


@dataclass
class User:
    username: str
    role: Role
    password_hash: str
    created: float


@dataclass
class ApiToken:
    id: str
    name: str
    username: str
    role: Role
    token_hash: str
    created: float
    last_used: float | None = None


@dataclass(frozen=True)
class Principal:
    """Who is asking: a user (by session or token) or the anonymous public (live display only)."""

    username: str | None
    role: Role | None
    via: str  # "session" | "token" | "public"

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN


def _hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def validate_username(username: str) -> str:
    if not USERNAME_RE.match(username):
        raise AuthError(
            f"user name {username!r} is not allowed: 1–64 characters a–z, 0–9, '_', '.', '@', '-', "
            "starting with a letter or digit"
        )
    return username


def validate_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise AuthError(f"the password must have at least {MIN_PASSWORD} characters")
    if len(password) > 1024:
        raise AuthError("the password must have at most 1024 characters")
    return password


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` atomically to ``path`` readable by the owner only."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


class UserStore:
    """Users and API tokens of one data folder (``users.json``)."""

    def __init__(self, data_dir: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(data_dir) / USERS_FILE
        self.clock = clock
        self._lock = threading.RLock()
        self._users: dict[str, User] = {}
        self._tokens: dict[str, ApiToken] = {}
        self._mtime: float | None = None
        self._load()

    # -- persistence --------------------------------------------------------------------------
    def _load(self) -> None:
        if not self.path.exists():
            self._users, self._tokens, self._mtime = {}, {}, None
            return
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            users = {
                u["username"]: User(u["username"], Role(u["role"]), u["password_hash"], float(u["created"]))
                for u in raw.get("users", [])
            }
            tokens = {
                t["id"]: ApiToken(
                    t["id"],
                    t["name"],
                    t["username"],
                    Role(t["role"]),
                    t["token_hash"],
                    float(t["created"]),
                    t.get("last_used"),
                )
                for t in raw.get("tokens", [])
            }
        except (ValueError, KeyError, TypeError) as exc:
            raise AuthError(f"{self.path}: cannot read the user file: {exc}") from None
        self._users, self._tokens = users, tokens
        self._mtime = self.path.stat().st_mtime

    def _refresh(self) -> None:
        """Pick up changes made by ``meterhub user …`` while the gateway runs."""
        mtime = self.path.stat().st_mtime if self.path.exists() else None
        if mtime != self._mtime:
            self._load()

    def _save(self) -> None:
        data = {
            "users": [{**asdict(u), "role": u.role.value} for u in self._users.values()],
            "tokens": [{**asdict(t), "role": t.role.value} for t in self._tokens.values()],
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _write_private(self.path, json.dumps(data, indent=1))
        self._mtime = self.path.stat().st_mtime

    # -- users ----------------------------------------------------------------------------------
    def users(self) -> list[User]:
        with self._lock:
            self._refresh()
            return sorted(self._users.values(), key=lambda u: u.username)

    def get(self, username: str) -> User | None:
        with self._lock:
            self._refresh()
            return self._users.get(username)

    def __len__(self) -> int:
        return len(self.users())

    def add(self, username: str, password: str, role: Role | str) -> User:
        role = Role(role)
        validate_username(username)
        validate_password(password)
        with self._lock:
            self._refresh()
            if username in self._users:
                raise UserExistsError(f"user {username!r} already exists")
            user = User(username, role, _hasher.hash(password), self.clock())
            self._users[username] = user
            self._save()
            return user

    def _admins(self) -> int:
        return sum(1 for u in self._users.values() if u.role is Role.ADMIN)

    def update(
        self,
        username: str,
        *,
        password: str | None = None,
        role: Role | str | None = None,
        keep_session: str | None = None,
    ) -> User:
        """Change a role (effective on the next request) or a password (ends the user's sessions but
        ``keep_session``, the cookie value of the session making the change)."""
        with self._lock:
            self._refresh()
            user = self._users.get(username)
            if user is None:
                raise KeyError(username)
            if role is not None:
                new_role = Role(role)
                if user.role is Role.ADMIN and new_role is not Role.ADMIN and self._admins() == 1:
                    raise LastAdminError(f"{username!r} is the last admin; make another user admin first")
                user.role = new_role
                for t in self._tokens.values():  # a token never has more rights than its user
                    if t.username == username and new_role is Role.READER:
                        t.role = Role.READER
            if password is not None:
                user.password_hash = _hasher.hash(validate_password(password))
            self._save()
        if password is not None:
            revoke_user_sessions(self.path.parent, username, keep=keep_session)
        return user

    def remove(self, username: str) -> None:
        with self._lock:
            self._refresh()
            user = self._users.get(username)
            if user is None:
                raise KeyError(username)
            if user.role is Role.ADMIN and self._admins() == 1:
                raise LastAdminError(f"{username!r} is the last admin and cannot be removed")
            del self._users[username]
            self._tokens = {k: t for k, t in self._tokens.items() if t.username != username}
            self._save()
        revoke_user_sessions(self.path.parent, username)

    def verify(self, username: str, password: str) -> User | None:
        """The user if the password matches, else None (also for unknown users, in similar time)."""
        with self._lock:
            self._refresh()
            user = self._users.get(username)
        if user is None:
            # Hash anyway so a probe cannot tell unknown names from wrong passwords by timing.
            _hasher.hash(password)
            return None
        try:
            _hasher.verify(user.password_hash, password)
        except (VerificationError, InvalidHashError):
            return None
        if _hasher.check_needs_rehash(user.password_hash):
            with self._lock:
                user.password_hash = _hasher.hash(password)
                self._save()
        return user

    # -- API tokens -------------------------------------------------------------------------------
    def tokens(self, username: str | None = None) -> list[ApiToken]:
        with self._lock:
            self._refresh()
            return [t for t in self._tokens.values() if username is None or t.username == username]

    def create_token(self, username: str, name: str, role: Role | str | None = None) -> tuple[ApiToken, str]:
        """Create a token for ``username``; returns it and the secret (shown once, never stored)."""
        with self._lock:
            self._refresh()
            user = self._users.get(username)
            if user is None:
                raise KeyError(username)
            token_role = Role(role) if role is not None else user.role
            if token_role is Role.ADMIN and user.role is not Role.ADMIN:
                raise RoleError("a reader cannot create an admin token")
            if not name.strip() or len(name) > 100:
                raise AuthError("a token needs a name of 1–100 characters")
            secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
            tok = ApiToken(
                secrets.token_hex(6), name.strip(), username, token_role, _hash_token(secret), self.clock()
            )
            self._tokens[tok.id] = tok
            self._save()
            return tok, secret

    def revoke_token(self, token_id: str) -> ApiToken:
        with self._lock:
            self._refresh()
            tok = self._tokens.pop(token_id, None)
            if tok is None:
                raise KeyError(token_id)
            self._save()
            return tok

    def find_token(self, secret: str) -> ApiToken | None:
        if not secret.startswith(TOKEN_PREFIX):
            return None
        digest = _hash_token(secret)
        with self._lock:
            self._refresh()
            for tok in self._tokens.values():
                if hmac.compare_digest(tok.token_hash, digest):
                    if tok.username not in self._users:
                        return None
                    tok.last_used = self.clock()
                    return tok
        return None


# -- first run -------------------------------------------------------------------------------------
def _setup_path(data_dir: Path) -> Path:
    return Path(data_dir) / SETUP_FILE


def ensure_setup_token(data_dir: Path) -> str | None:
    """The setup token while no user exists (created on first call), else None."""
    data_dir = Path(data_dir)
    if UserStore(data_dir).users():
        _setup_path(data_dir).unlink(missing_ok=True)
        return None
    path = _setup_path(data_dir)
    if path.exists():
        token = path.read_text(encoding="utf-8").strip()
        if token:
            return token
    data_dir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(18)
    _write_private(path, token + "\n")
    return token


def setup_banner(data_dir: Path) -> str | None:
    """Console text telling the operator how to create the first admin, or None once users exist."""
    token = ensure_setup_token(data_dir)
    if token is None:
        return None
    return (
        "No admin account yet. Open the web UI and create one with this one-time setup token:\n"
        f"    {token}\n"
        f"(also in {_setup_path(Path(data_dir))}; or run: meterhub user add NAME --role admin --data {data_dir})"
    )


def consume_setup_token(data_dir: Path, token: str) -> bool:
    """True (and the token is deleted) if ``token`` is the current setup token."""
    path = _setup_path(data_dir)
    if not path.exists():
        return False
    expected = path.read_text(encoding="utf-8").strip()
    if not expected or not hmac.compare_digest(expected.encode(), token.strip().encode()):
        return False
    path.unlink(missing_ok=True)
    return True


# -- sign-in throttling -----------------------------------------------------------------------------
#: Sign-in throttle defaults (see :class:`LoginLimiter`).
FREE_PER_PAIR = 5  # wrong passwords for one account from one address before it backs off
FREE_PER_ADDRESS = 20  # wrong passwords from one address (any accounts) before it backs off
SPREAD_ADDRESSES = 10  # addresses failing on one account before unknown addresses back off for it
BACKOFF_BASE = 1.0  # first delay [s]; each further failure doubles it
BACKOFF_CAP = 900.0  # longest delay [s]
FORGET_AFTER = 24 * 3600.0  # a counter with no failure for this long starts again [s]
KNOWN_PER_ACCOUNT = 16  # addresses remembered per account as having signed in
TABLE_SIZE = 50_000  # most counters kept per table; the least recently failing are dropped first


def backoff(failures: int, free: int, *, base: float = BACKOFF_BASE, cap: float = BACKOFF_CAP) -> float:
    """Delay after ``failures`` failures when ``free`` are allowed without one [s].

    0 below ``free``; then ``base``, 2·``base``, 4·``base`` … up to ``cap``.
    """
    if failures < free:
        return 0.0
    return min(base * 2.0 ** min(failures - free, 60), cap)


def address_key(address: str) -> str:
    """The throttle key of a client address: the address itself, or its /64 for IPv6 (one host
    usually holds a whole /64, so per-address counting would not hold it back)."""
    try:
        addr = ipaddress.ip_address(address)
    except ValueError:
        return address  # "testclient", "unknown": counted as they are
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        return str(ipaddress.ip_network(f"{addr}/64", strict=False))
    return str(addr)


def _pair(account: str, addr: str) -> str:
    return f"{account}\0{addr}"  # NUL: in neither a user name nor an address


@dataclass
class _Count:
    failures: int
    last: float  # time of the last failure [s]


class _Counters:
    """Failure counters by key, bounded in number (least recently failing dropped first)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[str, _Count] = OrderedDict()

    def get(self, key: str, now: float, forget: float) -> _Count | None:
        count = self._items.get(key)
        if count is not None and now - count.last >= forget:
            del self._items[key]
            return None
        return count

    def add(self, key: str, now: float, forget: float) -> None:
        count = self.get(key, now, forget)
        if count is None:
            self._items[key] = _Count(1, now)
        else:
            count.failures += 1
            count.last = now
            self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def undo(self, key: str) -> None:
        count = self._items.get(key)
        if count is not None:
            count.failures -= 1
            if count.failures <= 0:
                del self._items[key]

    def clear(self, key: str) -> None:
        self._items.pop(key, None)


@dataclass
class LoginLimiter:
    """Throttles password guessing per account *and* address, with bounded exponential backoff.

    Wrong passwords are counted three ways, each delay running from that counter's last failure:

    * per (account, address): after ``free_pair`` failures this address waits ``backoff`` before it may
      try this account again (1 s, 2 s, 4 s … ``cap``). Others, from elsewhere, are not held back, so a
      stranger cannot lock the real user out; a success clears this counter.
    * per address, whatever the account: after ``free_address`` failures, so one address cannot try a
      few passwords on every account.
    * per account, over addresses: once ``spread`` different addresses have failed on it (a guessing
      botnet), addresses that never signed in to it wait ``backoff`` of the surplus; addresses that did
      sign in to it before are not held back.

    A counter with no failure for ``forget`` seconds starts again. :meth:`attempt` counts the attempt
    as a failure at once (so parallel guesses cannot all slip through one free slot) and
    :meth:`succeeded` takes it back. Thread-safe. Counters are kept in memory: a restart forgets them.
    """

    free_pair: int = FREE_PER_PAIR
    free_address: int = FREE_PER_ADDRESS
    spread: int = SPREAD_ADDRESSES
    base: float = BACKOFF_BASE
    cap: float = BACKOFF_CAP
    forget: float = FORGET_AFTER
    clock: Callable[[], float] = time.time
    size: int = TABLE_SIZE
    _pairs: _Counters = field(init=False, repr=False)
    _addresses: _Counters = field(init=False, repr=False)
    _spread: dict[str, OrderedDict[str, float]] = field(init=False, repr=False, default_factory=dict)
    _known: dict[str, OrderedDict[str, None]] = field(init=False, repr=False, default_factory=dict)
    _lock: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._pairs = _Counters(self.size)
        self._addresses = _Counters(self.size)

    def _wait(self, count: _Count | None, free: int, now: float) -> float:
        if count is None:
            return 0.0
        return max(count.last + backoff(count.failures, free, base=self.base, cap=self.cap) - now, 0.0)

    def _spread_of(self, account: str, now: float) -> OrderedDict[str, float]:
        failing = self._spread.get(account, OrderedDict())
        for addr in [a for a, t in failing.items() if now - t >= self.forget]:
            del failing[addr]
        return failing

    def retry_after(self, address: str, account: str | None = None) -> float:
        """Seconds before ``address`` may try ``account`` again (0: now) [s]; counts nothing."""
        with self._lock:
            return self._retry_after(address_key(address), account, self.clock())

    def _retry_after(self, addr: str, account: str | None, now: float) -> float:
        wait = self._wait(self._addresses.get(addr, now, self.forget), self.free_address, now)
        if account is None:
            return wait
        wait = max(
            wait, self._wait(self._pairs.get(_pair(account, addr), now, self.forget), self.free_pair, now)
        )
        failing = self._spread_of(account, now)
        if len(failing) >= self.spread and addr not in self._known.get(account, {}):
            surplus = _Count(len(failing) - self.spread + 1, max(failing.values()))
            wait = max(wait, self._wait(surplus, 1, now))
        return wait

    def attempt(self, address: str, account: str | None = None) -> float:
        """Seconds to wait before this attempt is allowed [s]; 0 means go ahead, and then the attempt
        already counts as failed until :meth:`succeeded` says otherwise. ``account`` None counts the
        address only (the setup token)."""
        addr = address_key(address)
        with self._lock:
            now = self.clock()
            wait = self._retry_after(addr, account, now)
            if wait > 0:
                return wait
            self._addresses.add(addr, now, self.forget)
            if account is not None:
                self._pairs.add(_pair(account, addr), now, self.forget)
                failing = self._spread_of(account, now)
                failing[addr] = now
                failing.move_to_end(addr)
                while len(failing) > self.spread * 4:  # enough to measure the spread
                    failing.popitem(last=False)
                self._spread.pop(account, None)  # re-inserted last: the most recently failing account
                self._spread[account] = failing
                while len(self._spread) > self.size:
                    del self._spread[next(iter(self._spread))]
            return 0.0

    def succeeded(self, address: str, account: str | None = None) -> None:
        """The attempt just allowed by :meth:`attempt` was right: take its failure back, clear the
        (account, address) counter and remember the address as one that signs in to ``account``."""
        addr = address_key(address)
        with self._lock:
            self._addresses.undo(addr)
            if account is None:
                return
            self._pairs.clear(_pair(account, addr))
            failing = self._spread.get(account)
            if failing is not None:
                failing.pop(addr, None)
            known = self._known.pop(account, OrderedDict())
            self._known[account] = known  # last: the most recently signed-in account
            known[addr] = None
            known.move_to_end(addr)
            while len(known) > KNOWN_PER_ACCOUNT:
                known.popitem(last=False)
            while len(self._known) > self.size:
                del self._known[next(iter(self._known))]


@dataclass
class AuthState:
    """Everything auth needs at request time; ``app.state.auth``."""

    data_dir: Path
    store: UserStore
    sessions: Sessions
    limiter: LoginLimiter

    @classmethod
    def for_data_dir(
        cls,
        data_dir: Path,
        *,
        session_idle: float = DEFAULT_IDLE,
        session_lifetime: float = DEFAULT_LIFETIME,
        clock: Callable[[], float] = time.time,
    ) -> AuthState:
        """Auth of ``data_dir``; sessions end after ``session_idle`` idle or ``session_lifetime`` [s]."""
        return cls(
            Path(data_dir),
            UserStore(data_dir, clock=clock),
            Sessions(data_dir, idle=session_idle, lifetime=session_lifetime, clock=clock),
            LoginLimiter(clock=clock),
        )


# -- request-time checks -------------------------------------------------------------------------------
def auth_state(conn: HTTPConnection) -> AuthState:
    st: AuthState = conn.app.state.auth
    return st


def principal_of(conn: HTTPConnection, *, check_csrf: bool) -> Principal | None:
    """Identify the caller from a bearer token or the session cookie; None if anonymous.

    With ``check_csrf`` an unsafe request authenticated by cookie must carry the session's CSRF token.
    """
    st = auth_state(conn)
    header = conn.headers.get("authorization", "")
    if header:
        scheme, _, secret = header.partition(" ")
        tok = st.store.find_token(secret.strip()) if scheme.lower() == "bearer" else None
        if tok is None:
            raise HTTPException(401, "invalid API token", headers={"WWW-Authenticate": "Bearer"})
        return Principal(tok.username, tok.role, "token")
    sid = conn.cookies.get(SESSION_COOKIE)
    if not sid:
        return None
    session = st.sessions.get(sid)
    if session is None:
        return None
    user = st.store.get(session.username)
    if user is None:
        st.sessions.end(sid)
        return None
    method = conn.scope.get("method", "GET")
    if check_csrf and method not in _SAFE_METHODS:
        sent = conn.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(sent.encode(), session.csrf.encode()):
            raise HTTPException(403, "missing or wrong X-CSRF-Token header")
    return Principal(user.username, user.role, "session")


def require_reader(request: Request) -> Principal:
    """Any signed-in user or token (reader or admin)."""
    p = principal_of(request, check_csrf=True)
    if p is None:
        raise HTTPException(401, "sign in or send an API token", headers={"WWW-Authenticate": "Bearer"})
    return p


def require_admin(request: Request) -> Principal:
    """An admin user or admin token."""
    p = require_reader(request)
    if not p.is_admin:
        raise HTTPException(403, "this needs the admin role")
    return p


def live_allowed(conn: HTTPConnection) -> Principal | None:
    """The caller if they may read the live display: anyone when ``web.public_live`` is on."""
    p = principal_of(conn, check_csrf=False)
    if p is not None:
        return p
    gw = conn.app.state.gateway
    if gw.config.web.public_live:
        return Principal(None, None, "public")
    return None


def require_live(request: Request) -> Principal:
    """Read access to the live display (devices, circuits, live values, history, stream)."""
    p = live_allowed(request)
    if p is None:
        raise HTTPException(401, "sign in or send an API token", headers={"WWW-Authenticate": "Bearer"})
    return p


def describe(p: Principal | None) -> dict[str, Any]:
    if p is None or p.username is None:
        return {"authenticated": False, "username": None, "role": None, "via": p.via if p else None}
    return {
        "authenticated": True,
        "username": p.username,
        "role": p.role.value if p.role else None,
        "via": p.via,
    }
