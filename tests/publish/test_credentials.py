"""Credentials from the environment or a file: they log in, they are never logged, and a missing or wrong
one is a clear health message naming the variable, the file or the broker's answer."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from .conftest import Broker, Subscriber, free_port
from .helpers import aligned_past, feed, make_sink, site, three_phase, wait_until

SECRET = "s3cret-Ünïcode-pw"


def _broker(tmp_path: Path) -> Broker:
    folder = tmp_path / "broker"
    folder.mkdir()
    b = Broker(folder, free_port(), users={"gw": SECRET, "reader": "r"})
    b.start()
    return b


def _run(cfg_extra: str, broker: Broker, data: Path, *, deliver: bool) -> dict[str, object]:
    cfg = site(broker.url, formats="[meterhub-json]", extra=cfg_extra)
    t0 = aligned_past()

    async def go() -> dict[str, object]:
        sink, bus = make_sink(cfg, data)
        await sink.start()
        await feed(sink, bus, [three_phase(t0 + 0.5)])
        runner = sink.runners[0]
        if deliver:
            assert await wait_until(lambda: runner.link is not None and runner.link.acked == 1)
        else:
            await asyncio.sleep(1.5)
        health = sink.health().as_dict()
        await sink.stop()
        return health

    return asyncio.run(go())


def test_a_password_from_the_environment_logs_in_and_is_never_logged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    broker = _broker(tmp_path)
    sub = Subscriber(tmp_path, broker.port, "meterhub/#", login=("reader", "r"))
    try:
        monkeypatch.setenv("TEST_MQTT_PW", SECRET)
        with caplog.at_level(logging.DEBUG):
            health = _run(
                "    username: gw\n    password_env: TEST_MQTT_PW\n", broker, tmp_path / "d", deliver=True
            )
        assert health["state"] == "ok"
        msgs = sub.wait_for(
            lambda m: any(x["topic"] == "meterhub/site-1/circuits/main" for x in m), timeout=3
        )
        assert [m["topic"] for m in msgs if m["message_id"] is not None] == ["meterhub/site-1/circuits/main"]
        assert SECRET not in caplog.text
    finally:
        sub.stop()
        broker.stop()


def test_a_password_file_logs_in(tmp_path: Path) -> None:
    broker = _broker(tmp_path)
    secret = tmp_path / "mqtt.secret"
    secret.write_text(SECRET + "\n", encoding="utf-8")  # the trailing newline is not part of it
    try:
        health = _run(
            f"    username: gw\n    password_file: {secret}\n", broker, tmp_path / "d", deliver=True
        )
        assert health["state"] == "ok"
    finally:
        broker.stop()


def test_a_missing_variable_names_it_and_a_wrong_password_names_the_brokers_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = _broker(tmp_path)
    try:
        monkeypatch.delenv("TEST_MQTT_PW", raising=False)
        health = _run(
            "    username: gw\n    password_env: TEST_MQTT_PW\n", broker, tmp_path / "a", deliver=False
        )
        assert health["state"] == "down"
        assert (
            health["message"] == "publish test: environment variable TEST_MQTT_PW (password_env) is not set"
        )
        monkeypatch.setenv("TEST_MQTT_PW", "wrong")
        health = _run(
            "    username: gw\n    password_env: TEST_MQTT_PW\n", broker, tmp_path / "b", deliver=False
        )
        assert health["state"] == "degraded"
        message = str(health["message"])
        assert "not connected to mqtt://127.0.0.1" in message, message
        assert "broker refused the connection: Not authorized" in message, message
        counters = health["counters"]
        assert isinstance(counters, dict) and counters["backlog"] == 1  # kept for when the password is fixed
    finally:
        broker.stop()
