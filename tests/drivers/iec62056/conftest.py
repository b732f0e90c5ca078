"""Shared helpers for the IEC 62056-21 tests: a frozen clock, the seed 002 meter emulator, socat ptys."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from meterhub.model.topology import Wiring
from meterhub.sim.iec62056 import IecMeter
from meterhub.sim.physics import SiteModel


class ManualClock:
    """A clock the test moves by hand, so the model's values are fixed while they are compared. [s]"""

    def __init__(self, t: float = 1_790_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def frozen_meter(mode: str = "C") -> IecMeter:
    """The seed 002 meter on a frozen clock: its values do not move during a test."""
    clock = ManualClock()
    model = SiteModel.single_meter("meter", Wiring.P1W2, 7_000.0, clock=clock, model="constant")
    clock.t += 3600.0  # an hour of load on the registers
    model.advance()
    return IecMeter(model, mode=mode, wall=clock)


@pytest.fixture
def pty_pair(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Two linked ptys (socat), as a meter's optical head and the gateway's serial port would be."""
    if shutil.which("socat") is None:  # pragma: no cover - installed on CI and here
        pytest.skip("socat is not installed")
    a, b = tmp_path / "meter", tmp_path / "gateway"
    proc = subprocess.Popen(
        ["socat", f"pty,raw,echo=0,link={a}", f"pty,raw,echo=0,link={b}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 5
        while not (os.path.exists(a) and os.path.exists(b)):
            if time.monotonic() > deadline:
                raise RuntimeError("socat did not create its ptys within 5 s")
            time.sleep(0.02)
        yield str(a), str(b)
    finally:
        proc.terminate()
        proc.wait(5)
