"""Proxy headers believed from ``web.trusted_proxies`` only, and request bodies refused before parsing.

The body limits are tested against a real uvicorn server (``LiveServer``) with raw sockets, so a
chunked body without ``Content-Length`` and a declared 50 MB body reach the middleware exactly as a
client sends them.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
from collections.abc import Iterator, Sequence

import httpx
import pytest
from fastapi.testclient import TestClient
from starlette.types import Message, Scope

from meterhub.config.loader import ConfigError, parse_config
from meterhub.runtime import Gateway
from meterhub.web.app import create_app
from meterhub.web.auth import LoginLimiter, UserStore
from meterhub.web.limits import (
    BODY_MAX,
    LOGO_BODY_MAX,
    BodyLimit,
    ForwardedClient,
    client_from_chain,
    parse_networks,
)

from .conftest import SITE_YAML
from .liveserver import LiveServer

PROXY = "10.0.0.2"
ATTACKER = "203.0.113.9"
USER_AT_HOME = "198.51.100.7"
WRONG = {"username": "alice", "password": "guess"}
RIGHT = {"username": "alice", "password": "correct horse"}


# -- proxy headers ------------------------------------------------------------------------------------
def seen_client(
    headers: dict[str, str], peer: str, trusted: list[str], kind: str = "http"
) -> tuple[str, str]:
    """(client address, scheme) the app behind :class:`ForwardedClient` sees for one request."""
    seen: dict[str, object] = {}

    async def app(scope: Scope, receive: object, send: object) -> None:
        seen.update(client=scope["client"][0], scheme=scope["scheme"])

    scope = {
        "type": kind,
        "scheme": "http" if kind == "http" else "ws",
        "client": (peer, 50000),
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }

    async def nothing() -> Message:
        return {"type": "http.disconnect"}

    async def ignore(message: Message) -> None:
        pass

    asyncio.run(ForwardedClient(app, trusted=lambda: trusted)(scope, nothing, ignore))
    return str(seen["client"]), str(seen["scheme"])


def test_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy() -> None:
    xff = {"X-Forwarded-For": USER_AT_HOME, "X-Forwarded-Proto": "https"}
    assert seen_client(xff, "127.0.0.1", []) == ("127.0.0.1", "http")  # the default trusts nobody
    assert seen_client(xff, ATTACKER, ["10.0.0.0/8"]) == (ATTACKER, "http")
    assert seen_client(xff, PROXY, ["10.0.0.0/8"]) == (USER_AT_HOME, "https")
    assert seen_client(xff, "::ffff:10.0.0.2", ["10.0.0.2"]) == (USER_AT_HOME, "https")  # dual-stack peer


def test_the_client_is_the_right_most_address_that_is_not_a_trusted_proxy() -> None:
    nets = parse_networks(["10.0.0.0/8", "192.168.1.1"])
    peer = parse_networks(["10.0.0.2"])[0].network_address
    # the client wrote "1.1.1.1" itself; the outer proxy 192.168.1.1 appended the real client
    chain = ["1.1.1.1", ATTACKER, "192.168.1.1"]
    assert str(client_from_chain(chain, peer, nets)) == ATTACKER
    assert str(client_from_chain(["unknown", "192.168.1.1"], peer, nets)) == "192.168.1.1"
    assert str(client_from_chain(["10.1.1.1", "10.2.2.2"], peer, nets)) == "10.1.1.1"  # all trusted
    assert str(client_from_chain([f"{ATTACKER}:4711"], peer, nets)) == ATTACKER


def test_rfc7239_forwarded_header_is_understood() -> None:
    trusted = ["10.0.0.0/8"]
    fwd = {"Forwarded": 'for="[2001:db8:cafe::17]:4711";proto=https, for=10.0.0.9'}
    assert seen_client(fwd, PROXY, trusted)[0] == "2001:db8:cafe::17"
    assert seen_client({"Forwarded": "for=192.0.2.60;proto=http;by=203.0.113.43"}, PROXY, trusted)[0] == (
        "192.0.2.60"
    )
    assert seen_client({"Forwarded": "for=_hidden"}, PROXY, trusted)[0] == PROXY  # obfuscated: no client
    assert seen_client({"Forwarded": f'for="{ATTACKER}";proto=https'}, PROXY, trusted) == (ATTACKER, "https")


def test_disagreeing_forwarded_headers_leave_the_proxy_as_the_client() -> None:
    # the proxy sets one header and passes the client's own copy of the other through untouched
    both = {"X-Forwarded-For": USER_AT_HOME, "Forwarded": f"for={ATTACKER}"}
    assert seen_client(both, PROXY, ["10.0.0.0/8"])[0] == PROXY
    same = {"X-Forwarded-For": ATTACKER, "Forwarded": f"for={ATTACKER}"}
    assert seen_client(same, PROXY, ["10.0.0.0/8"])[0] == ATTACKER


def test_websocket_scheme_follows_forwarded_proto() -> None:
    assert seen_client({"X-Forwarded-Proto": "https"}, PROXY, [PROXY], kind="websocket") == (PROXY, "wss")


def test_trusted_proxies_entries_must_be_addresses_or_networks() -> None:
    cfg = parse_config(SITE_YAML + "web: {trusted_proxies: [10.0.0.2, '192.168.0.0/16', '::1']}\n", "t.yaml")
    assert cfg.web.trusted_proxies == ["10.0.0.2", "192.168.0.0/16", "::1"]
    with pytest.raises(ConfigError, match="'proxy.lan' is not an IP address or a CIDR network"):
        parse_config(SITE_YAML + "web: {trusted_proxies: [proxy.lan]}\n", "t.yaml")
    with pytest.raises(ValueError, match="'10.0.0.300'"):
        parse_networks(["10.0.0.300"])


def throttled_app(gateway: Gateway, trusted: list[str]) -> TestClient:
    gateway.config.web = gateway.config.web.model_copy(update={"trusted_proxies": trusted})
    app = create_app(gateway)
    app.state.auth.limiter = LoginLimiter(clock=lambda: 1e6)  # frozen: argon2 is slow on a busy machine
    app.state.auth.store.add("alice", "correct horse", "admin")
    return TestClient(app, client=(PROXY if trusted else "127.0.0.1", 50000))


def test_rotating_forwarded_for_does_not_escape_the_sign_in_throttle(gateway: Gateway) -> None:
    client = throttled_app(gateway, [])
    for i in range(5):
        r = client.post("/api/v1/auth/login", json=WRONG, headers={"X-Forwarded-For": f"192.0.2.{i}"})
        assert r.status_code == 401
    r = client.post("/api/v1/auth/login", json=RIGHT, headers={"X-Forwarded-For": "192.0.2.99"})
    assert r.status_code == 429


def test_behind_a_trusted_proxy_each_client_is_throttled_on_its_own(gateway: Gateway) -> None:
    client = throttled_app(gateway, ["10.0.0.0/8"])
    for _ in range(5):
        r = client.post("/api/v1/auth/login", json=WRONG, headers={"X-Forwarded-For": ATTACKER})
        assert r.status_code == 401
    assert (
        client.post("/api/v1/auth/login", json=RIGHT, headers={"X-Forwarded-For": ATTACKER}).status_code
        == 429
    )
    ok = client.post("/api/v1/auth/login", json=RIGHT, headers={"X-Forwarded-For": USER_AT_HOME})
    assert ok.status_code == 200


def test_cookies_are_secure_when_a_trusted_tls_proxy_says_https(gateway: Gateway) -> None:
    client = throttled_app(gateway, [PROXY])
    r = client.post("/api/v1/auth/login", json=RIGHT, headers={"X-Forwarded-Proto": "https"})
    assert all("Secure" in c for c in r.headers.get_list("set-cookie"))
    gateway.config.web = gateway.config.web.model_copy(update={"trusted_proxies": []})  # now untrusted
    r = client.post("/api/v1/auth/login", json=RIGHT, headers={"X-Forwarded-Proto": "https"})
    assert not any("Secure" in c for c in r.headers.get_list("set-cookie"))


# -- body limits ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with LiveServer(tmp_path_factory.mktemp("limits"), simulate=False) as srv:
        UserStore(srv.data).add("alice", "correct horse", "admin")
        yield srv


def raw_request(
    srv: LiveServer, head: str, chunks: Sequence[bytes] = (), *, end: bool = True
) -> tuple[int, dict[str, str]]:
    """Send ``head`` (request line and headers) and the chunks of a chunked body; (status, JSON body).

    With ``end`` False the body is left unfinished: the answer must come without it.
    """
    with socket.create_connection(("127.0.0.1", srv.port), timeout=20) as sock:
        sock.sendall(head.replace("\n", "\r\n").encode() + b"\r\n")
        for chunk in chunks:
            sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        if end and chunks:
            sock.sendall(b"0\r\n\r\n")
        resp = http.client.HTTPResponse(sock)
        resp.begin()
        return resp.status, json.loads(resp.read())


def test_declared_oversized_json_is_refused_before_any_byte_of_it_is_read(server: LiveServer) -> None:
    # 50 MB announced, none sent: the answer comes at once, so nothing was read or parsed
    status, body = raw_request(
        server,
        "POST /api/v1/auth/login HTTP/1.1\nHost: x\nContent-Type: application/json\nContent-Length: 50000000\n",
    )
    assert status == 413
    assert body["detail"] == (
        "the request body is larger than 1 MiB (1048576 bytes), the most POST /api/v1/auth/login accepts"
    )


def test_chunked_json_without_content_length_is_cut_off_at_the_limit(server: LiveServer) -> None:
    head = "POST /api/v1/auth/login HTTP/1.1\nHost: x\nContent-Type: application/json\nTransfer-Encoding: chunked\n"
    chunk = b" " * (64 * 1024)
    n = BODY_MAX // len(chunk) + 1  # one chunk past 1 MiB; the rest (49 MB) is never sent
    status, body = raw_request(
        server, head, [b'{"username": "alice", "password": "'] + [chunk] * n, end=False
    )
    assert status == 413 and "larger than 1 MiB" in body["detail"]


def test_chunked_json_within_the_limit_reaches_the_route(server: LiveServer) -> None:
    head = "POST /api/v1/auth/login HTTP/1.1\nHost: x\nContent-Type: application/json\nTransfer-Encoding: chunked\n"
    payload = json.dumps(RIGHT).encode()
    status, body = raw_request(server, head, [payload[:10], payload[10:]])
    assert status == 200 and body["username"] == "alice"


def test_logo_upload_is_limited_to_512_kib_before_authentication(server: LiveServer) -> None:
    too_big = {"file": ("logo.png", b"\x89PNG" + b"\0" * LOGO_BODY_MAX, "image/png")}
    r = httpx.put(f"{server.url}/api/v1/site/logo", files=too_big, timeout=20)  # anonymous
    assert r.status_code == 413
    assert r.json()["detail"].startswith("the request body is larger than 520 KiB (532480 bytes)")
    small = {"file": ("logo.png", b"\x89PNG" + b"\0" * 1000, "image/png")}
    assert httpx.put(f"{server.url}/api/v1/site/logo", files=small, timeout=20).status_code == 401


def test_a_logo_of_exactly_512_kib_is_accepted(server: LiveServer) -> None:
    with httpx.Client(base_url=server.url, timeout=20) as c:
        r = c.post("/api/v1/auth/login", json=RIGHT)
        assert r.status_code == 200, r.text
        logo = {"file": ("logo.png", b"\x89PNG" + b"\0" * (512 * 1024 - 4), "image/png")}
        r = c.put("/api/v1/site/logo", files=logo, headers={"X-CSRF-Token": r.json()["csrf"]})
        assert r.status_code == 200, r.text
        assert (server.data / "logo.png").stat().st_size == 512 * 1024


def test_a_one_mib_json_body_on_another_route_is_refused_with_json(server: LiveServer) -> None:
    big = json.dumps({"title": "x" * BODY_MAX})
    r = httpx.patch(f"{server.url}/api/v1/site", content=big, headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and r.headers["content-type"] == "application/json"
    assert "PATCH /api/v1/site" in r.json()["detail"]


def test_malformed_content_length_is_refused_with_a_message() -> None:
    sent: list[Message] = []

    async def app(scope: Scope, receive: object, send: object) -> None:  # pragma: no cover - never reached
        raise AssertionError("the app must not run")

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/api/v1/x", "headers": [(b"content-length", b"-5")]}
    asyncio.run(BodyLimit(app)(scope, receive, send))
    assert sent[0]["status"] == 400
    assert json.loads(sent[1]["body"]) == {
        "detail": "the Content-Length header is not a single non-negative integer"
    }
