"""Persistent browser sessions: survive a restart, shared by processes, idle and absolute expiry,
revocation on password change and user removal, sign out everywhere, listing (issue 6)."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from meterhub.runtime import Gateway
from meterhub.web.app import create_app
from meterhub.web.auth import AuthState, UserStore
from meterhub.web.sessions import SESSIONS_FILE, Sessions

from .conftest import T0, add_user, make_gateway

HOUR = 3600.0
DAY = 24 * HOUR


class Clock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def sign_in(client: TestClient, username: str, password: str = "correct horse") -> tuple[str, str]:
    """Sign in as a fresh browser; returns (session cookie value, CSRF token)."""
    client.cookies.clear()
    r = client.post("/api/v1/auth/login", json={"username": username, "password": password})
    assert r.status_code == 200, r.text
    return r.cookies["mh_session"], str(r.json()["csrf"])


def use(client: TestClient, sid: str) -> None:
    """Make ``client`` the browser holding session ``sid``."""
    client.cookies.clear()
    client.cookies.set("mh_session", sid)


def whoami(client: TestClient) -> str | None:
    name: str | None = client.get("/api/v1/auth/me").json()["username"]
    return name


def rows(data_dir: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(data_dir / SESSIONS_FILE) as db:
        out = db.execute("SELECT * FROM sessions").fetchall()
    db.close()
    return out


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def timed(gateway: Gateway, clock: Clock) -> Iterator[TestClient]:
    """An app whose auth runs on ``clock``: 1 h idle timeout, 1 day absolute lifetime."""
    app = create_app(gateway)
    app.state.auth = AuthState.for_data_dir(
        gateway.data_dir, clock=clock, session_idle=HOUR, session_lifetime=DAY
    )
    with TestClient(app) as c:
        yield c


def test_session_survives_a_restart_of_the_gateway(tmp_path: Path) -> None:
    gw = make_gateway(tmp_path)
    with TestClient(create_app(gw)) as first:
        add_user(first, "alice", "admin")
        sid, csrf = sign_in(first, "alice")
    gw.storage.close()
    gw = make_gateway(tmp_path)  # a new process: new Gateway and app over the same data folder
    try:
        with TestClient(create_app(gw)) as second:
            use(second, sid)
            assert whoami(second) == "alice"
            assert second.get("/api/v1/users").status_code == 200
            r = second.patch("/api/v1/site", json={"title": "After restart"}, headers={"X-CSRF-Token": csrf})
            assert r.status_code == 200  # the CSRF token is bound to the session and survived too
    finally:
        gw.storage.close()


def test_two_apps_on_one_data_folder_share_sessions(gateway: Gateway) -> None:
    with TestClient(create_app(gateway)) as a, TestClient(create_app(gateway)) as b:
        add_user(a, "alice", "admin")
        sid, csrf = sign_in(a, "alice")
        use(b, sid)
        assert whoami(b) == "alice"
        assert b.post("/api/v1/auth/logout", headers={"X-CSRF-Token": csrf}).status_code == 204
        use(a, sid)
        assert whoami(a) is None  # signed out on the other process as well


def test_stored_table_holds_only_the_hash_of_the_session_id(client: TestClient, gateway: Gateway) -> None:
    add_user(client, "alice", "admin")
    sid, _ = sign_in(client, "alice")
    (row,) = rows(gateway.data_dir)
    assert hashlib.sha256(sid.encode()).hexdigest() in row
    assert sid not in row
    for f in gateway.data_dir.glob(SESSIONS_FILE + "*"):  # database, WAL and shared memory
        assert sid.encode() not in f.read_bytes()
    mode = stat.S_IMODE(os.stat(gateway.data_dir / SESSIONS_FILE).st_mode)
    assert mode == 0o600


def test_idle_session_is_refused_after_the_idle_timeout(timed: TestClient, clock: Clock) -> None:
    add_user(timed, "alice", "admin")
    sid, _ = sign_in(timed, "alice")
    clock.t += 50 * 60  # 50 min idle: still valid, and this request restarts the idle timer
    assert whoami(timed) == "alice"
    clock.t += 50 * 60
    assert whoami(timed) == "alice"
    clock.t += HOUR + 1  # idle longer than 1 h
    assert whoami(timed) is None
    assert timed.get("/api/v1/users").status_code == 401


def test_absolute_lifetime_ends_an_active_session(timed: TestClient, clock: Clock) -> None:
    add_user(timed, "alice", "admin")
    sign_in(timed, "alice")
    for _ in range(28):  # used every 50 min for 23 h 20 min: never idle for 1 h
        clock.t += 50 * 60
        assert whoami(timed) == "alice"
    clock.t = T0 + DAY - 1
    assert whoami(timed) == "alice"
    clock.t = T0 + DAY
    assert whoami(timed) is None  # 1 day after sign-in, however active


def test_expired_sessions_are_purged_from_the_table(
    timed: TestClient, clock: Clock, gateway: Gateway
) -> None:
    add_user(timed, "alice", "admin")
    add_user(timed, "bob", "reader")
    sign_in(timed, "alice")
    sign_in(timed, "bob")
    assert len(rows(gateway.data_dir)) == 2
    clock.t += 2 * HOUR
    sign_in(timed, "bob")  # creating a session purges the ended ones
    assert [r[1] for r in rows(gateway.data_dir)] == ["bob"]


def test_session_store_refuses_an_idle_timeout_longer_than_the_lifetime(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="idle timeout"):
        Sessions(tmp_path, idle=2 * DAY, lifetime=DAY)


def test_password_change_ends_other_sessions_but_keeps_the_callers(client: TestClient) -> None:
    add_user(client, "rita", "reader")
    laptop, _ = sign_in(client, "rita")
    phone, csrf = sign_in(client, "rita")
    r = client.patch(
        "/api/v1/users/rita",
        json={"password": "new password", "current_password": "correct horse"},
        headers={"X-CSRF-Token": csrf},
    )
    assert r.status_code == 200
    assert whoami(client) == "rita"  # the phone made the change and stays signed in
    use(client, laptop)
    assert whoami(client) is None


def test_admin_password_reset_and_user_removal_end_the_users_sessions(client: TestClient) -> None:
    add_user(client, "alice", "admin")
    add_user(client, "rita", "reader")
    rita, _ = sign_in(client, "rita")
    _, admin_csrf = sign_in(client, "alice")
    admin = {"X-CSRF-Token": admin_csrf}
    assert (
        client.patch("/api/v1/users/rita", json={"password": "reset password"}, headers=admin).status_code
        == 200
    )
    alice = client.cookies["mh_session"]
    use(client, rita)
    assert whoami(client) is None
    rita, _ = sign_in(client, "rita", "reset password")
    use(client, alice)
    assert client.delete("/api/v1/users/rita", headers=admin).status_code == 204
    use(client, rita)
    assert whoami(client) is None
    assert client.get("/api/v1/live").status_code == 401


def test_cli_changes_in_the_data_folder_revoke_sessions_of_the_running_gateway(
    client: TestClient, gateway: Gateway
) -> None:
    add_user(client, "alice", "admin")
    add_user(client, "rita", "reader")
    rita, _ = sign_in(client, "rita")
    alice, _ = sign_in(client, "alice")
    cli = UserStore(gateway.data_dir)  # what `meterhub user …` uses, as another process
    cli.update("rita", password="changed by cli")
    use(client, rita)
    assert whoami(client) is None
    cli.add("bob", "bobs password", "admin")
    cli.remove("alice")
    use(client, alice)
    assert whoami(client) is None


def test_role_change_takes_effect_on_the_next_request(client: TestClient, gateway: Gateway) -> None:
    add_user(client, "alice", "admin")
    add_user(client, "bob", "admin")
    sign_in(client, "bob")
    assert client.get("/api/v1/users").status_code == 200
    UserStore(gateway.data_dir).update("bob", role="reader")
    assert client.get("/api/v1/users").status_code == 403  # same session, role looked up live
    assert client.get("/api/v1/auth/me").json()["role"] == "reader"


def test_logout_all_ends_every_session_of_the_user_only(client: TestClient) -> None:
    add_user(client, "rita", "reader")
    add_user(client, "alice", "admin")
    alice, _ = sign_in(client, "alice")
    laptop, _ = sign_in(client, "rita")
    phone, csrf = sign_in(client, "rita")
    assert client.post("/api/v1/auth/logout-all").status_code == 403  # cookie without CSRF header
    r = client.post("/api/v1/auth/logout-all", headers={"X-CSRF-Token": csrf})
    assert r.status_code == 204
    assert any(c.startswith('mh_session=""') for c in r.headers.get_list("set-cookie"))
    for sid in (laptop, phone):
        use(client, sid)
        assert whoami(client) is None
    use(client, alice)
    assert whoami(client) == "alice"
    client.cookies.clear()
    assert client.post("/api/v1/auth/logout-all").status_code == 401


def test_list_sessions_marks_the_current_one_and_never_shows_ids(timed: TestClient, clock: Clock) -> None:
    add_user(timed, "rita", "reader")
    add_user(timed, "alice", "admin")
    sign_in(timed, "alice")
    laptop, _ = sign_in(timed, "rita")
    clock.t += 600
    phone, _ = sign_in(timed, "rita")
    r = timed.get("/api/v1/auth/sessions")
    assert r.status_code == 200
    listed = r.json()
    assert len(listed) == 2  # rita's only
    assert [s["current"] for s in listed] == [True, False]  # most recently seen first
    assert set(listed[0]) == {"created", "last_seen", "expires", "current"}
    assert listed[0]["created"] == "2025-11-22T04:10:00.000Z"
    assert listed[0]["expires"] == "2025-11-22T05:10:00.000Z"  # 1 h idle timeout after the last use
    assert listed[1]["expires"] == "2025-11-22T05:00:00.000Z"
    assert laptop not in r.text and phone not in r.text
    assert hashlib.sha256(phone.encode()).hexdigest() not in r.text
    timed.cookies.clear()
    assert timed.get("/api/v1/auth/sessions").status_code == 401


def test_admin_revokes_another_users_sessions_a_reader_cannot(client: TestClient) -> None:
    add_user(client, "alice", "admin")
    add_user(client, "rita", "reader")
    add_user(client, "bob", "reader")
    bob, _ = sign_in(client, "bob")
    _, rita_csrf = sign_in(client, "rita")
    r = client.delete("/api/v1/users/bob/sessions", headers={"X-CSRF-Token": rita_csrf})
    assert r.status_code == 403
    rita = client.cookies["mh_session"]
    _, admin_csrf = sign_in(client, "alice")
    admin = {"X-CSRF-Token": admin_csrf}
    assert client.delete("/api/v1/users/nobody/sessions", headers=admin).status_code == 404
    assert client.delete("/api/v1/users/bob/sessions", headers=admin).status_code == 204
    assert whoami(client) == "alice"
    use(client, bob)
    assert whoami(client) is None
    use(client, rita)
    assert whoami(client) == "rita"
    client.cookies.clear()
    assert client.delete("/api/v1/users/bob/sessions").status_code == 401


def test_cookies_are_secure_over_https_and_last_the_absolute_lifetime(gateway: Gateway) -> None:
    with TestClient(create_app(gateway), base_url="https://testserver") as c:
        add_user(c, "alice", "admin")
        r = c.post("/api/v1/auth/login", json={"username": "alice", "password": "correct horse"})
    cookies = r.headers.get_list("set-cookie")
    session = next(x for x in cookies if x.startswith("mh_session="))
    csrf = next(x for x in cookies if x.startswith("mh_csrf="))
    assert "HttpOnly" in session and "SameSite=strict" in session and "Secure" in session
    assert "HttpOnly" not in csrf and "Secure" in csrf
    assert f"Max-Age={int(7 * DAY)}" in session
