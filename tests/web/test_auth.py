"""Users and roles: first-run setup token, sessions with CSRF, API tokens, sign-in throttling per account
and address, password changes, role rules."""

from __future__ import annotations

import os
import stat

import pytest
from fastapi.testclient import TestClient

from meterhub.runtime import Gateway
from meterhub.web.app import create_app
from meterhub.web.auth import LoginLimiter, UserStore, address_key, backoff, setup_banner

from .conftest import add_user, login


def test_setup_token_is_private_and_banner_names_it(tmp_path) -> None:
    text = setup_banner(tmp_path)
    token = (tmp_path / "setup-token").read_text().strip()
    assert text is not None and token in text
    assert stat.S_IMODE(os.stat(tmp_path / "setup-token").st_mode) == 0o600
    assert setup_banner(tmp_path) == text  # stable until used
    UserStore(tmp_path).add("root", "a long password", "admin")
    assert setup_banner(tmp_path) is None
    assert not (tmp_path / "setup-token").exists()


def test_first_run_setup_creates_the_admin_once(client: TestClient, gateway: Gateway) -> None:
    me = client.get("/api/v1/auth/me").json()
    assert me["setup_required"] is True and me["authenticated"] is False
    token = (gateway.data_dir / "setup-token").read_text().strip()
    wrong = client.post(
        "/api/v1/setup", json={"token": "guess", "username": "admin", "password": "secret123"}
    )
    assert wrong.status_code == 403
    ok = client.post("/api/v1/setup", json={"token": token, "username": "admin", "password": "secret123"})
    assert ok.status_code == 200 and ok.json()["role"] == "admin"
    assert client.get("/api/v1/users").json()[0]["username"] == "admin"  # signed in by the setup
    again = client.post("/api/v1/setup", json={"token": token, "username": "eve", "password": "secret123"})
    assert again.status_code == 409


def test_no_default_password_anonymous_is_refused(client: TestClient) -> None:
    for method, path in [
        ("GET", "/api/v1/users"),
        ("POST", "/api/v1/users"),
        ("GET", "/api/v1/live"),
        ("GET", "/api/v1/circuits"),
        ("PATCH", "/api/v1/site"),
        ("GET", "/api/v1/tokens"),
    ]:
        r = client.request(method, path, json={})
        assert r.status_code == 401, (method, path, r.status_code)
    for user in ("admin", "root", "meterhub"):
        for password in ("admin", "password", "meterhub", ""):
            r = client.post("/api/v1/auth/login", json={"username": user, "password": password or "x"})
            assert r.status_code in (401, 429)


def test_public_live_opens_the_display_but_never_users_or_configuration(public_client: TestClient) -> None:
    assert public_client.get("/api/v1/live").status_code == 200
    assert public_client.get("/api/v1/circuits").status_code == 200
    assert public_client.get("/api/v1/site").status_code == 200
    assert public_client.get("/api/v1/users").status_code == 401
    assert public_client.patch("/api/v1/site", json={"title": "x"}).status_code == 401


def test_session_cookie_is_httponly_samesite_and_changes_need_csrf(client: TestClient) -> None:
    add_user(client, "alice", "admin")
    r = client.post("/api/v1/auth/login", json={"username": "alice", "password": "correct horse"})
    cookies = r.headers.get_list("set-cookie")
    session = next(c for c in cookies if c.startswith("mh_session="))
    assert "HttpOnly" in session and "SameSite=strict" in session
    csrf = r.json()["csrf"]
    assert client.patch("/api/v1/site", json={"title": "Lobby"}).status_code == 403  # no CSRF header
    assert (
        client.patch("/api/v1/site", json={"title": "Lobby"}, headers={"X-CSRF-Token": "wrong"}).status_code
        == 403
    )
    ok = client.patch("/api/v1/site", json={"title": "Lobby"}, headers={"X-CSRF-Token": csrf})
    assert ok.status_code == 200 and ok.json()["title"] == "Lobby"
    client.post("/api/v1/auth/logout", headers={"X-CSRF-Token": csrf})
    assert client.get("/api/v1/users").status_code == 401


def test_reader_views_but_cannot_configure_or_manage_users(
    client: TestClient, reader: dict[str, str]
) -> None:
    assert client.get("/api/v1/live").status_code == 200
    assert client.get("/api/v1/users").status_code == 403
    assert (
        client.post(
            "/api/v1/users", json={"username": "x", "password": "12345678"}, headers=reader
        ).status_code
        == 403
    )
    assert client.patch("/api/v1/site", json={"title": "x"}, headers=reader).status_code == 403
    assert client.patch("/api/v1/users/rita", json={"role": "admin"}, headers=reader).status_code == 403
    r = client.post("/api/v1/tokens", json={"name": "x", "role": "admin"}, headers=reader)
    assert r.status_code == 403 and r.json()["detail"] == "a reader cannot create an admin token"
    own = {"password": "new password", "current_password": "correct horse"}
    assert client.patch("/api/v1/users/rita", json=own, headers=reader).status_code == 200


def test_admin_manages_users_and_the_last_admin_stays(client: TestClient, admin: dict[str, str]) -> None:
    r = client.post(
        "/api/v1/users",
        json={"username": "bob", "password": "bobs password", "role": "reader"},
        headers=admin,
    )
    assert r.status_code == 201 and r.json()["role"] == "reader"
    assert (
        client.post(
            "/api/v1/users", json={"username": "bob", "password": "whatever1"}, headers=admin
        ).status_code
        == 409
    )
    assert (
        client.post(
            "/api/v1/users", json={"username": "Bad Name", "password": "whatever1"}, headers=admin
        ).status_code
        == 422
    )
    assert [u["username"] for u in client.get("/api/v1/users").json()] == ["alice", "bob"]
    assert client.delete("/api/v1/users/alice", headers=admin).status_code == 409  # last admin
    demote = client.patch("/api/v1/users/alice", json={"role": "reader"}, headers=admin)
    assert demote.status_code == 409
    assert demote.json()["detail"] == "'alice' is the last admin; make another user admin first"
    assert client.delete("/api/v1/users/bob", headers=admin).status_code == 204
    assert client.delete("/api/v1/users/bob", headers=admin).status_code == 404


def test_api_token_authenticates_machines_and_can_be_revoked(
    client: TestClient, admin: dict[str, str]
) -> None:
    made = client.post("/api/v1/tokens", json={"name": "scada", "role": "reader"}, headers=admin).json()
    secret = made["token"]
    assert secret.startswith("mh_")
    client.cookies.clear()
    bearer = {"Authorization": f"Bearer {secret}"}
    assert client.get("/api/v1/live", headers=bearer).status_code == 200
    assert client.get("/api/v1/users", headers=bearer).status_code == 403  # reader token
    assert client.get("/api/v1/live", headers={"Authorization": "Bearer mh_wrong"}).status_code == 401
    stored = (client.app.state.gateway.data_dir / "users.json").read_text()  # type: ignore[attr-defined]
    assert secret not in stored  # only the hash is kept
    login(client, "alice")
    csrf = client.get("/api/v1/auth/me").json()["csrf"]
    assert client.delete(f"/api/v1/tokens/{made['id']}", headers={"X-CSRF-Token": csrf}).status_code == 204
    client.cookies.clear()
    assert client.get("/api/v1/live", headers=bearer).status_code == 401


# -- sign-in throttling ---------------------------------------------------------------------------------
ATTACKER = "203.0.113.9"  # RFC 5737 documentation addresses
USER_AT_HOME = "198.51.100.7"


class Clock:
    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def fail(lim: LoginLimiter, address: str, account: str | None, times: int) -> None:
    """``times`` wrong passwords, each allowed (no wait) when it was made."""
    for _ in range(times):
        assert lim.attempt(address, account) == 0.0


def test_five_wrong_passwords_hold_back_only_that_address_for_that_account() -> None:
    lim = LoginLimiter(clock=Clock())
    fail(lim, ATTACKER, "alice", 5)
    assert lim.attempt(ATTACKER, "alice") == pytest.approx(1.0)  # the 6th waits base = 1 s
    assert lim.attempt(USER_AT_HOME, "alice") == 0.0  # the real user elsewhere is not locked out
    lim.succeeded(USER_AT_HOME, "alice")
    assert lim.attempt(ATTACKER, "bob") == 0.0  # nor another account from the same address


def test_backoff_doubles_with_each_further_failure_up_to_the_cap() -> None:
    clock = Clock()
    lim = LoginLimiter(clock=clock)
    fail(lim, ATTACKER, "alice", 5)
    waits = []
    for _ in range(12):
        wait = lim.attempt(ATTACKER, "alice")
        waits.append(wait)
        clock.t += wait  # wait it out exactly, then guess (wrong) again
        assert lim.attempt(ATTACKER, "alice") == 0.0
    # failure n ≥ 5 waits 2^(n-5) s, never more than 900 s
    assert waits == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900]
    assert backoff(4, 5) == 0.0 and backoff(5, 5) == 1.0 and backoff(10_000, 5) == 900.0


def test_a_success_clears_the_accounts_counter_for_that_address() -> None:
    lim = LoginLimiter(clock=Clock())
    fail(lim, USER_AT_HOME, "alice", 4)  # four typos …
    assert lim.attempt(USER_AT_HOME, "alice") == 0.0
    lim.succeeded(USER_AT_HOME, "alice")  # … then the right password
    fail(lim, USER_AT_HOME, "alice", 5)  # five fresh tries again before any delay
    assert lim.attempt(USER_AT_HOME, "alice") == pytest.approx(1.0)


def test_one_address_trying_many_accounts_backs_off_after_twenty_failures() -> None:
    lim = LoginLimiter(clock=Clock())
    for i in range(20):
        fail(lim, ATTACKER, f"user{i}", 1)
    assert lim.attempt(ATTACKER, "user20") == pytest.approx(1.0)
    assert lim.attempt(USER_AT_HOME, "user20") == 0.0


def test_guessing_from_many_addresses_holds_back_only_addresses_that_never_signed_in() -> None:
    clock = Clock()
    lim = LoginLimiter(clock=clock)
    assert lim.attempt(USER_AT_HOME, "alice") == 0.0
    lim.succeeded(USER_AT_HOME, "alice")  # alice signed in from home last week
    clock.t += 7 * 86400
    for i in range(10):  # a botnet: one guess from each of ten addresses
        fail(lim, f"192.0.2.{i + 1}", "alice", 1)
    assert lim.attempt("192.0.2.200", "alice") == pytest.approx(1.0)  # a new address waits
    assert lim.attempt(USER_AT_HOME, "alice") == 0.0  # home does not
    assert lim.attempt("192.0.2.201", "bob") == 0.0  # other accounts are not affected


def test_one_stranger_cannot_trigger_the_many_addresses_rule() -> None:
    clock = Clock()
    lim = LoginLimiter(clock=clock)
    for _ in range(40):  # one address, patiently waiting out every delay
        clock.t += lim.retry_after(ATTACKER, "alice")
        fail(lim, ATTACKER, "alice", 1)
    assert lim.attempt("192.0.2.77", "alice") == 0.0  # a fresh address of the real user


def test_counters_start_again_after_a_quiet_day() -> None:
    clock = Clock()
    lim = LoginLimiter(clock=clock)
    for _ in range(8):  # waiting out each delay
        clock.t += lim.retry_after(ATTACKER, "alice")
        fail(lim, ATTACKER, "alice", 1)
    assert lim.attempt(ATTACKER, "alice") == pytest.approx(8.0)  # 2^(8-5) s
    clock.t += 24 * 3600
    fail(lim, ATTACKER, "alice", 5)


def test_parallel_guesses_count_before_their_passwords_are_checked() -> None:
    lim = LoginLimiter(clock=Clock())
    allowed = [lim.attempt(ATTACKER, "alice") == 0.0 for _ in range(10)]  # none answered yet
    assert allowed == [True] * 5 + [False] * 5


def test_ipv6_addresses_of_one_64_share_their_counters() -> None:
    lim = LoginLimiter(clock=Clock())
    for i in range(5):  # one host rotating through its /64
        fail(lim, f"2001:db8:1:2::{i + 1:x}", "alice", 1)
    assert lim.attempt("2001:db8:1:2:ffff::9", "alice") == pytest.approx(1.0)
    assert lim.attempt("2001:db8:1:3::1", "alice") == 0.0
    assert address_key("::ffff:192.0.2.1") == "192.0.2.1"
    assert address_key("2001:db8:1:2:3:4:5:6") == "2001:db8:1:2::/64"


def test_the_limiter_keeps_a_bounded_number_of_counters() -> None:
    lim = LoginLimiter(clock=Clock(), size=100)
    for i in range(1000):
        lim.attempt(f"10.0.{i // 250}.{i % 250}", f"user{i}")
    assert len(lim._pairs._items) == 100 and len(lim._addresses._items) == 100
    assert len(lim._spread) == 100


def test_stranger_is_throttled_while_the_real_user_signs_in_from_elsewhere(gateway: Gateway) -> None:
    app = create_app(gateway)
    app.state.auth.limiter = LoginLimiter(clock=Clock())  # still: argon2 takes long on a busy machine
    app.state.auth.store.add("alice", "correct horse", "admin")
    attacker = TestClient(app, client=(ATTACKER, 40000))
    for _ in range(5):
        r = attacker.post("/api/v1/auth/login", json={"username": "alice", "password": "guess"})
        assert r.status_code == 401 and r.json()["detail"] == "wrong user name or password"
    r = attacker.post("/api/v1/auth/login", json={"username": "alice", "password": "correct horse"})
    assert r.status_code == 429 and r.headers["Retry-After"] == "1"
    assert r.json()["detail"] == (
        "too many failed sign-ins for this account from your address; try again in 1 s"
    )
    home = TestClient(app, client=(USER_AT_HOME, 40001))
    ok = home.post("/api/v1/auth/login", json={"username": "alice", "password": "correct horse"})
    assert ok.status_code == 200 and ok.json()["username"] == "alice"


def test_wrong_setup_tokens_are_throttled_per_address(gateway: Gateway) -> None:
    app = create_app(gateway)
    app.state.auth.limiter = LoginLimiter(clock=Clock())
    attacker = TestClient(app, client=(ATTACKER, 40000))
    body = {"token": "guess", "username": "admin", "password": "secret123"}
    for _ in range(20):
        assert attacker.post("/api/v1/setup", json=body).status_code == 403
    assert attacker.post("/api/v1/setup", json=body).status_code == 429
    token = (gateway.data_dir / "setup-token").read_text().strip()
    home = TestClient(app, client=(USER_AT_HOME, 40001))
    assert home.post("/api/v1/setup", json={**body, "token": token}).status_code == 200


# -- password change -------------------------------------------------------------------------------------
def test_changing_your_own_password_needs_the_current_one(client: TestClient, reader: dict[str, str]) -> None:
    url = "/api/v1/users/rita"
    r = client.patch(url, json={"password": "new password"}, headers=reader)
    assert r.status_code == 422
    assert r.json()["detail"] == "to change your own password, send your current password as current_password"
    r = client.patch(
        url, json={"password": "new password", "current_password": "wrong horse"}, headers=reader
    )
    assert r.status_code == 403 and r.json()["detail"] == "the current password is wrong"
    store = client.app.state.auth.store  # type: ignore[attr-defined]
    assert store.verify("rita", "correct horse") is not None  # unchanged
    r = client.patch(
        url, json={"password": "new password", "current_password": "correct horse"}, headers=reader
    )
    assert r.status_code == 200
    assert store.verify("rita", "new password") is not None and store.verify("rita", "correct horse") is None


def test_an_api_token_alone_cannot_change_its_users_password(
    client: TestClient, admin: dict[str, str]
) -> None:
    secret = client.post("/api/v1/tokens", json={"name": "scada"}, headers=admin).json()["token"]
    client.cookies.clear()
    bearer = {"Authorization": f"Bearer {secret}"}
    r = client.patch("/api/v1/users/alice", json={"password": "taken over!"}, headers=bearer)
    assert r.status_code == 422
    r = client.patch(
        "/api/v1/users/alice", json={"password": "taken over!", "current_password": "guess"}, headers=bearer
    )
    assert r.status_code == 403


def test_wrong_current_passwords_are_throttled_like_sign_ins(
    client: TestClient, reader: dict[str, str]
) -> None:
    client.app.state.auth.limiter = LoginLimiter(clock=Clock())  # type: ignore[attr-defined]
    wrong = {"password": "new password", "current_password": "guess"}
    for _ in range(5):
        assert client.patch("/api/v1/users/rita", json=wrong, headers=reader).status_code == 403
    r = client.patch(
        "/api/v1/users/rita", json={**wrong, "current_password": "correct horse"}, headers=reader
    )
    assert r.status_code == 429 and "too many wrong current passwords" in r.json()["detail"]


def test_an_admin_resets_another_users_password_without_theirs(
    client: TestClient, admin: dict[str, str]
) -> None:
    add_user(client, "rita", "reader")
    r = client.patch("/api/v1/users/rita", json={"password": "reset password"}, headers=admin)
    assert r.status_code == 200
    assert client.app.state.auth.store.verify("rita", "reset password") is not None  # type: ignore[attr-defined]


def test_passwords_are_argon2_hashed(tmp_path) -> None:
    store = UserStore(tmp_path)
    store.add("alice", "correct horse", "admin")
    text = (tmp_path / "users.json").read_text()
    assert "$argon2id$" in text and "correct horse" not in text
    assert store.verify("alice", "correct horse") is not None
    assert store.verify("alice", "wrong horse") is None
    assert store.verify("nobody", "correct horse") is None
