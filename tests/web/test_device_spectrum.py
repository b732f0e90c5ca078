"""Harmonics a Modbus device reports reach the spectrum API (issue 10 item 12).

End to end over loopback Modbus TCP: the simulated seed-000 module bus (a V10 voltage unit with voltage
harmonics, two E31 analysers with current harmonics, an E21 without) → :class:`ModbusSource` →
``SourceContext.publish_spectra`` → the gateway's live cache → ``GET /api/v1/circuits/{id}/spectrum``.
The simulator's clock stands still, so its physical model serves the same values while they are compared.
"""

from __future__ import annotations

import asyncio
import math
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

from meterhub.config.loader import parse_config
from meterhub.drivers.base import SourceContext
from meterhub.drivers.modbus.source import ModbusSource, link_for_bus
from meterhub.runtime import Gateway
from meterhub.sim.base import SimContext
from meterhub.sim.modbus_server import modbus_simulator
from meterhub.sim.physics import SiteModel
from meterhub.storage import open_storage
from meterhub.web.app import create_app

from .conftest import add_user, login
from .liveserver import free_port

F32 = 2.0**-23  # relative resolution of a float32 register
T_SIM = 1_790_000_000.0

MODULE_SITE = """
site: {name: Module harmonics, timezone: Europe/Berlin}
buses:
  - {id: modules, kind: modbus-tcp, host: 127.0.0.1, port: PORT, timeout: 0.5, retries: 1}
devices:
  - {id: vu, bus: modules, unit: 1, profile: enertrek-v10}
  - {id: e31-press, bus: modules, unit: 2, profile: enertrek-e31}
  - {id: e31-desk, bus: modules, unit: 3, profile: enertrek-e31}
  - {id: e21-pump, bus: modules, unit: 4, profile: enertrek-e21}
circuits:
  - {id: press, device: e31-press, channels: [1, 2, 3], wiring: 3P4W}
  # channel 1 of the module on supply phase L3: its spectrum is the circuit's L3
  - {id: desk, device: e31-desk, channels: [1], wiring: 1P2W, phases: [L3]}
  - {id: pump, device: e21-pump, channels: [1, 2, 3], wiring: 3P4W}
simulation:
  loads:
    press: {model: constant, rated_power: 9000, power_factor: 0.85}
    desk: {model: it, rated_power: 1500, power_factor: 0.95}
    pump: {model: constant, rated_power: 4000, power_factor: 0.8}
"""


class _Clock:
    def __init__(self) -> None:
        self.t = T_SIM

    def __call__(self) -> float:
        return self.t


@pytest.fixture(scope="module")
def polled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Gateway, SiteModel]]:
    """A gateway whose live cache holds one poll of the simulated module bus, read over Modbus TCP."""
    tmp = tmp_path_factory.mktemp("device-spectrum")
    cfg = parse_config(MODULE_SITE.replace("PORT", str(free_port())), "module-site.yaml")
    clock = _Clock()
    model = SiteModel(cfg, clock=clock)
    clock.t += 60.0
    model.advance()
    data = tmp / "data"
    data.mkdir()
    gw = Gateway(cfg, data_dir=data, storage=open_storage(cfg.storage, data, timezone=cfg.site.timezone))

    async def poll() -> None:
        bus = cfg.buses[0]
        sim = await modbus_simulator(SimContext(cfg, bus, cfg.devices, model))
        ctx = SourceContext(cfg, bus, cfg.devices, gw.status, data, publish_spectra=gw.emit_spectra)
        src = ModbusSource(ctx, link=link_for_bus(bus), wall=clock)
        src._emit = gw.live.update
        try:
            assert await src.scheduler.run_cycle() == 4
        finally:
            await src.close()
            await sim.close()

    asyncio.run(poll())
    with TestClient(create_app(gw)) as c:
        add_user(c, "rita", "reader")
        login(c, "rita")
        yield c, gw, model
    gw.storage.close()


def test_e31_current_harmonics_reach_the_spectrum_api(
    polled: tuple[TestClient, Gateway, SiteModel],
) -> None:
    client, gw, model = polled
    for k, phase in enumerate(("L1", "L2", "L3"), start=1):
        r = client.get("/api/v1/circuits/press/spectrum", params={"quantity": "current", "phase": phase})
        assert r.status_code == 200, r.text
        s = r.json()
        assert s["orders"] == list(range(51)) and s["unit"] == "A"
        ch = model.channel("e31-press", k)
        # the device serves orders 1…50 in % of the fundamental; order 0 it does not report
        assert s["percent_of_fundamental"][0] is None
        for h in (1, 3, 5, 7):
            assert s["percent_of_fundamental"][h] == pytest.approx(100 * ch.harmonics_current[h], rel=F32)
        # the "constant" load: 3rd 2 %, 5th 1 % of the fundamental, THD = √(2² + 1²) = 2.236 %
        assert s["percent_of_fundamental"][3] == pytest.approx(2.0, rel=1e-6)
        assert s["percent_of_fundamental"][5] == pytest.approx(1.0, rel=1e-6)
        assert s["thd"] == pytest.approx(math.sqrt(5), rel=1e-6)
        # RMS per order from the channel's RMS current of the same poll: I1 = I / √(1 + THD²)
        i1 = ch.current / math.sqrt(1 + (ch.thd_current / 100) ** 2)
        assert s["rms"][1] == pytest.approx(i1, rel=1e-5)
        assert s["rms"][3] == pytest.approx(0.02 * i1, rel=1e-5)
        assert s["stale"] is False  # the module answered the poll


def test_a_module_channel_is_the_phase_its_circuit_gives_it(
    polled: tuple[TestClient, Gateway, SiteModel],
) -> None:
    client, _, model = polled
    s = client.get("/api/v1/circuits/desk/spectrum").json()  # default: the circuit's own phase
    assert (s["phase"], s["quantity"]) == ("L3", "current")
    # the switch-mode supply of the "it" load: 3rd 70 %, 5th 45 %, 7th 25 %, 9th 12 %
    for h, expected in ((3, 70.0), (5, 45.0), (7, 25.0), (9, 12.0)):
        assert s["percent_of_fundamental"][h] == pytest.approx(expected, rel=1e-6)
    thd = math.sqrt(70**2 + 45**2 + 25**2 + 12**2 + 8**2 + 5**2)  # 88.3 %
    assert s["thd"] == pytest.approx(thd, rel=1e-6)
    ch = model.channel("e31-desk", 1)
    assert ch.current == pytest.approx(s["rms"][1] * math.sqrt(1 + (thd / 100) ** 2), rel=1e-5)
    r = client.get("/api/v1/circuits/desk/spectrum", params={"phase": "L1"})
    assert r.status_code == 422 and "has no phase L1; it has L3" in r.text


def test_v10_voltage_harmonics_are_the_circuits_supply_spectrum(
    polled: tuple[TestClient, Gateway, SiteModel],
) -> None:
    client, _, model = polled
    sup = model.supply()
    for k, phase in enumerate(("L1", "L2", "L3")):
        s = client.get(
            "/api/v1/circuits/press/spectrum", params={"quantity": "voltage", "phase": phase}
        ).json()
        assert s["unit"] == "V"
        for h in (5, 7, 11):
            assert s["percent_of_fundamental"][h] == pytest.approx(100 * sup.harmonics_voltage[k, h], rel=F32)
        u1 = sup.voltage[k] / math.sqrt(1 + (sup.thd_voltage[k] / 100) ** 2)
        assert s["rms"][1] == pytest.approx(u1, rel=1e-5)
        assert s["thd"] == pytest.approx(sup.thd_voltage[k], rel=1e-5)
    # a single-phase circuit gets the voltage spectrum of its own phase
    desk = client.get("/api/v1/circuits/desk/spectrum", params={"quantity": "voltage"}).json()
    assert desk["phase"] == "L3"
    assert desk["percent_of_fundamental"][5] == pytest.approx(100 * sup.harmonics_voltage[2, 5], rel=F32)


def test_a_module_without_harmonics_answers_404_with_the_reason(
    polled: tuple[TestClient, Gateway, SiteModel],
) -> None:
    client, _, model = polled
    r = client.get("/api/v1/circuits/pump/spectrum", params={"quantity": "current"})
    assert r.status_code == 404
    assert r.json()["detail"] == (
        "no current harmonic spectrum for circuit 'pump': its device reports no current harmonics "
        "(device 'e21-pump' (enertrek-e21 on bus 'modules')); its voltage spectrum is available"
    )
    # the E21 takes its voltage from the V10, whose voltage harmonics the pump circuit has
    v = client.get("/api/v1/circuits/pump/spectrum", params={"quantity": "voltage", "phase": "L2"})
    assert v.status_code == 200
    assert v.json()["percent_of_fundamental"][5] == pytest.approx(
        100 * model.supply().harmonics_voltage[1, 5], rel=F32
    )
    circuits = {c["id"]: (c["spectrum"], c["spectra"]) for c in client.get("/api/v1/circuits").json()}
    assert circuits == {
        "press": (True, ["current", "voltage"]),
        "desk": (True, ["current", "voltage"]),
        "pump": (True, ["voltage"]),  # the UI offers the voltage tab only
    }


def test_the_profile_decides_before_the_first_poll(tmp_path: Path) -> None:
    """Before any spectrum arrived: 503 (retry) where the profile maps harmonics, 404 where it does not."""
    cfg = parse_config(MODULE_SITE.replace("PORT", "15999"), "module-site.yaml")
    data = tmp_path / "data"
    data.mkdir()
    gw = Gateway(cfg, data_dir=data, storage=open_storage(cfg.storage, data, timezone=cfg.site.timezone))
    try:
        with TestClient(create_app(gw)) as c:
            add_user(c, "rita", "reader")
            login(c, "rita")
            r = c.get("/api/v1/circuits/press/spectrum")
            assert r.status_code == 503 and r.headers["Retry-After"] == "2"
            assert c.get("/api/v1/circuits/pump/spectrum").status_code == 404  # current: none
            assert c.get("/api/v1/circuits/pump/spectrum", params={"quantity": "voltage"}).status_code == 503
    finally:
        gw.storage.close()
