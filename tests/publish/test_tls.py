"""TLS for real: a CA, a server and a client certificate made in the test (:mod:`.certs`), a private
Mosquitto with a TLS listener that requires the client certificate, and a meterhub receiver served by
uvicorn over HTTPS.

``mqtts://`` with the CA and the client certificate delivers (``mosquitto_sub`` on the broker's plain
listener is the witness); ``https://`` upload with the CA delivers into the receiver's storage, and so
does one that requires a client certificate. A wrong CA leaves the data in the outbox and the status
says ``certificate verify failed`` naming the instance — a log line, never a traceback."""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from meterhub.publish.status import instance_status, send_test

from .certs import Pki, make_pki
from .conftest import Broker, Subscriber, free_port
from .helpers import aligned_past, feed, make_sink, site, three_phase, wait_until
from .test_http_upload import Receiver, _token_file, sender_site


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def tls_broker(tmp_path: Path, pki: Pki) -> Iterator[Broker]:
    folder = tmp_path / "broker"
    folder.mkdir()
    b = Broker(folder, free_port(), tls=(pki.ca, pki.server_cert, pki.server_key, True))
    b.start()
    yield b
    b.stop()


def _tls(ca: Path, pki: Pki | None = None) -> str:
    client = f", cert_file: {pki.client_cert}, key_file: {pki.client_key}" if pki is not None else ""
    return f"    tls: {{ca_file: {ca}{client}}}"


def _no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    assert [r.getMessage() for r in caplog.records if r.exc_info] == []


def test_mqtts_with_a_ca_and_a_client_certificate_delivers(
    tmp_path: Path, tls_broker: Broker, pki: Pki, subscribers: list[Subscriber]
) -> None:
    sub = Subscriber(tls_broker.folder, tls_broker.port, "meterhub/site-1/circuits/#")
    subscribers.append(sub)
    cfg = site(tls_broker.url_tls, formats="[meterhub-json]", extra=_tls(pki.ca, pki))
    t0 = aligned_past(back=10)

    async def go() -> str:
        sink, bus = make_sink(cfg, tmp_path / "data")
        await sink.start()
        await feed(sink, bus, [three_phase(t0 + k + 0.5) for k in range(3)])
        runner = sink.runners[0]
        assert await wait_until(lambda: runner.link is not None and runner.link.acked == 3)
        state = instance_status(runner.inst, runner, time.time()).state
        await sink.stop()
        return state

    assert asyncio.run(go()) == "connected"
    msgs = sub.wait_for(lambda m: len(m) >= 3)
    assert [m["topic"] for m in msgs] == ["meterhub/site-1/circuits/main"] * 3
    assert [m["message_id"] for m in msgs] == [1, 2, 3]


def test_mqtts_with_a_wrong_ca_says_certificate_verify_failed(
    tmp_path: Path, tls_broker: Broker, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    cfg = site(tls_broker.url_tls, formats="[meterhub-json]", extra=_tls(pki.wrong_ca, pki))
    t0 = aligned_past(back=10)

    async def go() -> tuple[str, str, int]:
        sink, bus = make_sink(cfg, tmp_path / "data")
        await sink.start()
        await feed(sink, bus, [three_phase(t0 + 0.5)])
        runner = sink.runners[0]
        assert await wait_until(lambda: "certificate verify failed" in (runner.link.state().last_error or ""))  # type: ignore[union-attr]
        assert await wait_until(lambda: runner.outbox is not None and runner.outbox.stats().backlog == 1)
        st = instance_status(runner.inst, runner, time.time())
        await sink.stop()
        return st.state, st.message, st.backlog

    state, message, backlog = asyncio.run(go())
    assert state == "down" and backlog == 1  # kept for when the CA is fixed
    assert message.startswith(f"publish test: not connected to {tls_broker.url_tls} (cannot connect to ")
    # OpenSSL's reason depends on the chain the server sends (Mosquitto adds the CA: "self-signed
    # certificate in certificate chain"; uvicorn does not: "unable to get local issuer certificate")
    assert "TLS: certificate verify failed: " in message
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("publish test: cannot connect" in w and "certificate verify failed" in w for w in warnings)
    _no_tracebacks(caplog)


def _https_receiver(tmp: Path, pki: Pki, *, client_cert: bool) -> Receiver:
    options: dict[str, object] = {"certfile": str(pki.server_cert), "keyfile": str(pki.server_key)}
    if client_cert:
        options |= {"ca_certs": str(pki.ca), "cert_reqs": ssl.CERT_REQUIRED}
    r = Receiver(tmp, ssl=options)
    r.start()
    return r


@pytest.mark.parametrize("client_cert", [False, True], ids=["server-cert", "client-cert-required"])
def test_https_upload_with_the_ca_delivers_and_a_test_message_is_accepted(
    tmp_path: Path, pki: Pki, client_cert: bool
) -> None:
    receiver = _https_receiver(tmp_path, pki, client_cert=client_cert)
    try:
        assert receiver.url.startswith("https://127.0.0.1:")
        cfg = sender_site(
            receiver.url,
            _token_file(tmp_path, receiver.token),
            extra=_tls(pki.ca, pki if client_cert else None),
        )
        t0 = aligned_past(back=20)

        async def go() -> tuple[bool, str]:
            sink, bus = make_sink(cfg, tmp_path / "data")
            await sink.start()
            await feed(sink, bus, [three_phase(t0 + k + 0.5) for k in range(3)])
            runner = sink.runners[0]
            assert await wait_until(lambda: runner.link is not None and runner.link.acked == 3)
            result = await send_test(sink, list(cfg.publish or []), "up", by="alice", now=time.time())
            await sink.stop()
            return result.acknowledged, result.message

        acknowledged, message = asyncio.run(go())
        assert receiver.stored() == [(t0 + k + 1, 7200.0) for k in range(3)]
        assert acknowledged, message
        assert "the server answered 2xx" in message
    finally:
        receiver.close()


def test_https_upload_with_a_wrong_ca_says_certificate_verify_failed(
    tmp_path: Path, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    receiver = _https_receiver(tmp_path, pki, client_cert=False)
    try:
        cfg = sender_site(receiver.url, _token_file(tmp_path, receiver.token), extra=_tls(pki.wrong_ca))
        t0 = aligned_past(back=20)

        async def go() -> tuple[str, str, int]:
            sink, bus = make_sink(cfg, tmp_path / "data")
            await sink.start()
            await feed(sink, bus, [three_phase(t0 + 0.5)])
            runner = sink.runners[0]
            assert await wait_until(
                lambda: runner.link is not None and runner.link.state().last_error not in (None, "connecting")
            )
            st = instance_status(runner.inst, runner, time.time())
            await sink.stop()
            return st.state, st.message, st.backlog

        state, message, backlog = asyncio.run(go())
        assert state == "down" and backlog == 1
        assert message.startswith(f"publish up: not connected to {receiver.url}")
        assert (
            "connection failed: TLS: certificate verify failed: unable to get local issuer certificate"
            in message
        )
        assert receiver.stored() == []
        _no_tracebacks(caplog)
    finally:
        receiver.close()
