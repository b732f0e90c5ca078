"""Shared helpers for the Modbus tests: a frozen clock, free ports, a small seed-000 site."""

from __future__ import annotations

import socket

import pytest


class ManualClock:
    """A clock the test moves by hand, so the model's values are fixed while they are compared. [s]"""

    def __init__(self, t: float = 1_790_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


SMALL_SITE = """
site: {name: round trip}
buses:
  - {id: panel, kind: modbus-tcp, host: 127.0.0.1, port: PORT, timeout: 0.5, retries: 1}
devices:
  - {id: vu, bus: panel, unit: 1, profile: enertrek-v10}
  - {id: m-hvac, bus: panel, unit: 2, profile: enertrek-m30}
  - {id: m-sockets, bus: panel, unit: 3, profile: enertrek-m20}
circuits:
  - {id: hvac, device: m-hvac, channels: [1, 2, 3], wiring: 3P4W, voltage_reference: vu}
  - {id: sockets-1, device: m-sockets, channels: [1], wiring: 1P2W, phases: [L2], voltage_reference: vu}
  - {id: sockets-2, device: m-sockets, channels: [2], wiring: 1P2W, phases: [L3], voltage_reference: vu}
simulation:
  loads:
    hvac: {model: constant, rated_power: 9000, power_factor: 0.85}
    sockets-1: {model: constant, rated_power: 1500, power_factor: 0.9}
    sockets-2: {model: kitchen, rated_power: 2500, power_factor: 0.95}
"""


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()
