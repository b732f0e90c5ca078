"""Real components for the publish tests: a private Mosquitto on a free port (own config, stopped by PID)
and ``mosquitto_sub`` as the independent subscriber (JSON lines, ``-F %j``)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

MOSQUITTO = "/usr/sbin/mosquitto"
MOSQUITTO_SUB = shutil.which("mosquitto_sub") or "/usr/bin/mosquitto_sub"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


class Broker:
    """A Mosquitto of our own on ``port``; ``stop()`` / ``start()`` simulate an outage on the same port.

    persistent : keep sessions (and the messages queued for an offline persistent subscriber) across a
        restart, in a file in the test's folder; off unless a test needs the subscriber's session to
        survive the outage.
    users : only these users (a password file made with ``mosquitto_passwd``); password_file, acl_file :
        ready-made files instead (e.g. the ones ``meterhub central provision`` writes).
    tls : ``(ca, cert, key, require_certificate)`` PEM paths: a second listener on ``tls_port`` speaks
        TLS (``url_tls`` = ``mqtts://127.0.0.1:<tls_port>``) and, with require_certificate, wants a client
        certificate signed by ``ca``; the plain listener on ``port`` stays for ``mosquitto_sub``."""

    def __init__(
        self,
        folder: Path,
        port: int,
        *,
        persistent: bool = False,
        users: dict[str, str] | None = None,
        password_file: Path | None = None,
        acl_file: Path | None = None,
        tls: tuple[Path, Path, Path, bool] | None = None,
    ) -> None:
        self.folder = folder
        self.port = port
        self.url = f"mqtt://127.0.0.1:{port}"
        lines = [f"listener {port} 127.0.0.1"]
        self.tls_port: int | None = None
        if tls is not None:
            ca, cert, key, require = tls
            self.tls_port = free_port()
            self.url_tls = f"mqtts://127.0.0.1:{self.tls_port}"
            lines = [
                f"listener {self.tls_port} 127.0.0.1",
                f"cafile {ca}",
                f"certfile {cert}",
                f"keyfile {key}",
                f"require_certificate {'true' if require else 'false'}",
                *lines,
            ]
        if (
            os.geteuid() == 0
        ):  # Mosquitto started as root switches to user 'mosquitto', who cannot read tmp_path
            lines.append("user root")
        if users:  # only these users, checked by Mosquitto's own password file
            pw = folder / "passwords"
            pw.write_text("")
            for user, password in users.items():
                subprocess.run(["mosquitto_passwd", "-b", str(pw), user, password], check=True)
            password_file = pw
        if password_file is not None:  # Mosquitto's own password file (users, or one given ready-made)
            lines += ["allow_anonymous false", f"password_file {password_file}"]
        else:
            lines.append("allow_anonymous true")
        if acl_file is not None:
            lines.append(f"acl_file {acl_file}")
        if persistent:
            # queue everything for an offline persistent subscriber (mosquitto's default keeps 1000)
            lines += ["persistence true", f"persistence_location {folder}/", "autosave_interval 1"]
            lines += ["max_queued_messages 0", "max_queued_bytes 0"]
        else:
            lines.append("persistence false")
        self.conf = folder / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = (self.folder / "mosquitto.log").open("ab")
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=log, stderr=log)
        deadline = time.monotonic() + 5
        while not (_listening(self.port) and (self.tls_port is None or _listening(self.tls_port))):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"mosquitto did not start on port {self.port}: {self.folder}/mosquitto.log"
                )
            time.sleep(0.02)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


class Subscriber:
    """``mosquitto_sub -V 5 -q 1 -t TOPIC -F %j`` writing JSON lines to a file; :meth:`messages` parses
    them (topic, payload text, retain flag, the ``message-id`` user property)."""

    def __init__(
        self,
        folder: Path,
        port: int,
        topic: str = "#",
        *,
        client_id: str | None = None,
        login: tuple[str, str] | None = None,
    ) -> None:
        self.out = folder / f"sub-{time.monotonic_ns()}.jsonl"
        args = [
            MOSQUITTO_SUB,
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-V",
            "5",
            "-q",
            "1",
            "-t",
            topic,
            "-F",
            "%j",
        ]
        if login is not None:
            args += ["-u", login[0], "-P", login[1]]
        if client_id is not None:  # a persistent session that outlives an outage of the broker
            args += ["-i", client_id, "-c", "-x", "600"]
        self._fh = self.out.open("wb")
        self.proc = subprocess.Popen(args, stdout=self._fh, stderr=subprocess.STDOUT)
        time.sleep(0.3)  # let it subscribe

    def messages(self) -> list[dict[str, object]]:
        out = []
        for line in self.out.read_text(encoding="utf-8").splitlines():
            if not line.startswith("{"):
                continue
            m = json.loads(line)
            props = m.get("properties", {}).get("user-properties", {})
            out.append(
                {
                    "topic": m["topic"],
                    "payload": m.get("payload") or "",
                    "retain": bool(m.get("retain")),
                    "message_id": int(props["message-id"]) if "message-id" in props else None,
                }
            )
        return out

    def wait_for(self, predicate, timeout: float = 10.0) -> list[dict[str, object]]:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while True:
            msgs = self.messages()
            if predicate(msgs) or time.monotonic() > deadline:
                return msgs
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._fh.close()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    folder = tmp_path / "broker"
    folder.mkdir()
    b = Broker(folder, free_port())
    b.start()
    yield b
    b.stop()


@pytest.fixture
def subscribers(tmp_path: Path) -> Iterator[list[Subscriber]]:
    subs: list[Subscriber] = []
    yield subs
    for s in subs:
        s.stop()
