"""A ``meterhub demo`` with simulated wiring faults, in a subprocess on free loopback ports."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from meterhub.web.auth import UserStore

ADMIN = ("ops", "correct horse battery")
START_TIMEOUT = 90.0  # [s]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class FaultyDemo:
    """``with FaultyDemo(tmp, ["hvac:reverse:L2"]) as demo: demo.client`` — signed in as an admin."""

    def __init__(self, data: Path, faults: list[str]) -> None:
        self.data = data
        self.faults = faults
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = data / "console.log"
        self.client = httpx.Client(base_url=self.url, timeout=30)

    def __enter__(self) -> FaultyDemo:
        self.data.mkdir(parents=True, exist_ok=True)
        UserStore(self.data).add(*ADMIN, "admin")
        args = [sys.executable, "-m", "meterhub", "demo", "--port", str(self.port), "--data", str(self.data)]
        for f in self.faults:
            args += ["--fault", f]
        self.proc = subprocess.Popen(args, stdout=self.log.open("ab"), stderr=subprocess.STDOUT,
                                     env={**os.environ, "NO_COLOR": "1"})  # fmt: skip
        t0 = time.monotonic()
        while time.monotonic() - t0 < START_TIMEOUT:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the demo ended: {self.log.read_text(errors='replace')[-2000:]}")
            try:
                r = self.client.post("/api/v1/auth/login", json={"username": ADMIN[0], "password": ADMIN[1]})
            except httpx.HTTPError:
                time.sleep(0.5)
                continue
            if r.status_code == 200:
                self.client.headers["X-CSRF-Token"] = r.json()["csrf"]
                return self
            time.sleep(0.5)
        raise RuntimeError("the demo did not serve in time")

    def __exit__(self, *exc: object) -> None:
        self.client.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def report(self) -> dict[str, dict]:
        r = self.client.get("/api/v1/commissioning")
        r.raise_for_status()
        return {c["id"]: c for c in r.json()["circuits"]}
