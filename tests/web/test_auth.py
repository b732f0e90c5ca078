"""Users and roles: first-run setup token, sessions with CSRF, API tokens, rate limiting, role rules."""

from __future__ import annotations

import os
import stat

import pytest
from fastapi.testclient import TestClient

from meterhub.runtime import Gateway
from meterhub.web.auth import LoginLimiter, UserStore, setup_banner

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
    assert (
        client.patch("/api/v1/users/rita", json={"password": "new password"}, headers=reader).status_code
        == 200
    )


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


def test_failed_logins_are_rate_limited(client: TestClient) -> None:
    add_user(client, "alice", "admin")
    for _ in range(5):
        assert (
            client.post("/api/v1/auth/login", json={"username": "alice", "password": "nope"}).status_code
            == 401
        )
    r = client.post("/api/v1/auth/login", json={"username": "alice", "password": "correct horse"})
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0


def test_limiter_window_ages_out() -> None:
    now = [1000.0]
    lim = LoginLimiter(limit=3, window=60.0, clock=lambda: now[0])
    for _ in range(3):
        lim.failed("ip:a")
    assert lim.retry_after("ip:a") == pytest.approx(60.0)
    now[0] += 45
    assert lim.retry_after("ip:a") == pytest.approx(15.0)
    now[0] += 15
    assert lim.retry_after("ip:a") == 0.0


def test_passwords_are_argon2_hashed(tmp_path) -> None:
    store = UserStore(tmp_path)
    store.add("alice", "correct horse", "admin")
    text = (tmp_path / "users.json").read_text()
    assert "$argon2id$" in text and "correct horse" not in text
    assert store.verify("alice", "correct horse") is not None
    assert store.verify("alice", "wrong horse") is None
    assert store.verify("nobody", "correct horse") is None
