"""A CT ratio the device applies itself is written to it where its profile names the register (issue 10
item 12): a real gateway polls a simulated meter over loopback Modbus TCP; ``PATCH /circuits/{id}``
writes the ratio through that line, reads it back, and only then stores it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest

from meterhub import profiles
from meterhub.config.types import Ratio
from meterhub.drivers.modbus.codec import decode
from meterhub.drivers.modbus.ratio_write import RatioWriteError, register_value, write_ratio
from meterhub.drivers.modbus.transport import ModbusLink, TransportKind
from meterhub.profiles.datatypes import DataType, WordOrder
from meterhub.profiles.schema import Function, RatioRegister
from meterhub.web.auth import UserStore

from .liveserver import LiveServer, free_port

#: A CT-operated meter that applies the ratio kept in holding 0x0100 (rated primary, float32) itself.
TEST_PROFILE = """
id: test-ct-meter
vendor: Test
model: CT meter with a ratio register
source: meterhub test profile (a CT meter whose set-up table names its CT primary register)
kind: meter
defaults: {function: input, type: float32}
registers:
  - {quantity: voltage, phase: L1, address: 0x00}
  - {quantity: voltage, phase: L2, address: 0x02}
  - {quantity: voltage, phase: L3, address: 0x04}
  - {quantity: current, phase: L1, address: 0x06}
  - {quantity: current, phase: L2, address: 0x08}
  - {quantity: current, phase: L3, address: 0x0A}
transformers:
  values: primary
  ct_register: {function: holding, address: 0x0100, type: float32, holds: primary, source: test table 3}
"""

SITE = """
site: {name: Ratio write, timezone: Europe/Berlin}
buses:
  - {id: panel, kind: modbus-tcp, host: 127.0.0.1, port: 15999, timeout: 0.5, retries: 1}
devices:
  - {id: meter, bus: panel, unit: 7, profile: test-ct-meter}
circuits:
  - {id: grid, device: meter, channels: [1, 2, 3], wiring: 3P4W, purpose: grid,
     ct: {kind: adapter-5a, ratio: 800/5}}
simulation:
  loads:
    grid: {model: supply, rated_power: 20000}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, dict[str, str]]]:
    tmp = tmp_path_factory.mktemp("ratio-write")
    extra = tmp / "profiles"
    extra.mkdir()
    (extra / "test-ct-meter.yaml").write_text(TEST_PROFILE, encoding="utf-8")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(profiles, "_DIRS", [extra, profiles.PROFILE_DIR])  # this module only
        profiles._load.cache_clear()
        with LiveServer(tmp, site_yaml=SITE) as srv:
            store = UserStore(srv.data)
            store.add("ada", "admin password 1", "admin")
            _, token = store.create_token("ada", "ratio test")
            auth = {"Authorization": f"Bearer {token}"}
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not srv.gateway.status["meter"].online:
                time.sleep(0.1)  # the first poll: the line is open
            yield srv, auth
        profiles._load.cache_clear()


def _read_ct_primary(port: int) -> float:
    async def go() -> float:
        link = ModbusLink(TransportKind.TCP, host="127.0.0.1", port=port, timeout=1.0)
        try:
            return decode(await link.read(Function.HOLDING, 7, 0x0100, 2), DataType.FLOAT32)
        finally:
            await link.close()

    return asyncio.run(go())


def test_a_ct_ratio_is_written_to_the_device_and_read_back(
    server: tuple[LiveServer, dict[str, str]],
) -> None:
    srv, auth = server
    r = httpx.patch(
        f"{srv.url}/api/v1/circuits/grid", json={"ct": {"ratio": "1000/5"}}, headers=auth, timeout=10
    )
    assert r.status_code == 200, r.text
    assert r.json()["ct_ratio"] == "1000/5"
    port = srv.gateway.config.buses[0].port
    assert port is not None
    assert _read_ct_primary(port) == 1000.0  # the simulated meter keeps the rated primary [A]
    assert srv.gateway.config.circuit("grid").ct.ratio.value == 200.0
    assert "1000" in srv.config_path.read_text()  # written back to the site file


def test_a_vt_ratio_without_a_register_is_refused(server: tuple[LiveServer, dict[str, str]]) -> None:
    srv, auth = server
    r = httpx.patch(
        f"{srv.url}/api/v1/circuits/grid", json={"vt_ratio": "20000/100"}, headers=auth, timeout=10
    )
    assert r.status_code == 409
    assert r.json()["detail"] == (
        "VT ratio 20000/100 refused for circuit 'grid' on device 'meter': test-ct-meter reports primary "
        "values; set the VT ratio in the device, if it has one"
    )


def test_an_unreachable_device_is_named_and_nothing_is_written() -> None:
    register = RatioRegister(function=Function.HOLDING, address=0x0100, source="test table 3")

    async def go() -> None:
        link = ModbusLink(TransportKind.TCP, host="127.0.0.1", port=free_port(), timeout=0.3)
        try:
            await write_ratio(link, 7, register, Ratio(primary=1000, secondary=5), word_order=WordOrder.BIG)
        finally:
            await link.close()

    with pytest.raises(RatioWriteError, match=r"CT ratio not written to holding register 0x0100 of unit 7"):
        asyncio.run(go())


def test_a_ratio_register_holds_the_primary_or_the_ratio() -> None:
    r = Ratio(primary=800, secondary=5)
    assert register_value(RatioRegister(address=0, holds="primary", source="t 1"), r) == 800.0
    assert register_value(RatioRegister(address=0, holds="ratio", source="t 1"), r) == 160.0
