"""A private Mosquitto on a free port (own config, stopped by PID) and ``mosquitto_pub`` as the
independent publisher for the MQTT ingest tests."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from ...publish.conftest import Broker as PublishBroker
from ...publish.conftest import free_port

__all__ = ["Broker", "free_port"]

MOSQUITTO_PUB = shutil.which("mosquitto_pub") or "/usr/bin/mosquitto_pub"


class Broker(PublishBroker):
    """Mosquitto on 127.0.0.1:``port`` with anonymous access and no persistence (the publish tests'
    broker), and ``mosquitto_pub`` to feed it."""

    def publish(self, topic: str, payload: str | bytes) -> None:
        """One QoS 1 message by ``mosquitto_pub`` (an independent client)."""
        data = payload.encode() if isinstance(payload, str) else payload
        subprocess.run(
            [MOSQUITTO_PUB, "-h", "127.0.0.1", "-p", str(self.port), "-q", "1", "-t", topic, "-s"],
            input=data,
            check=True,
            timeout=10,
        )


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    folder = tmp_path / "broker"
    folder.mkdir()
    b = Broker(folder, free_port())
    b.start()
    yield b
    b.stop()
