"""IO points and 1-wire probes configured through the API (issue 16): list, add, change, remove every
kind of point through the audited configuration path, and discover the probes on a (simulated) 1-wire bus.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from meterhub.config.loader import parse_config
from meterhub.runtime import Gateway
from meterhub.sim.io import W1Simulator, probe_temperature
from meterhub.storage import open_storage

from .conftest import add_user, login

IO_SITE = """\
site: {name: IO config site, timezone: Europe/Berlin}
buses:
  - {id: panel, kind: modbus-tcp, host: 127.0.0.1, port: 15998, timeout: 0.2}
  - {id: onewire, kind: io}
devices:
  - {id: vu, name: Voltage unit, bus: panel, unit: 1, profile: enertrek-v10, enabled: false}
  - {id: dio, name: DIO-4/2, bus: panel, unit: 13, profile: enertrek-dio-4-2, enabled: false}
  - {id: aio, name: AIO-2/2, bus: panel, unit: 14, profile: enertrek-aio-2-2, enabled: false}
  - {id: pulses, name: Pulse concentrator, bus: panel, unit: 15, profile: pulse-concentrator-7, enabled: false}
  - {id: w1, name: 1-wire master, bus: onewire, profile: linux-w1, poll_interval: 3600}
circuits: []
io:
  w1_root: w1
  points:
    - {id: gas-main, name: Gas meter, kind: pulse, device: pulses, channel: 1, medium: gas, unit: m3, weight: 0.01}
    - {id: door-main, name: Main board door, kind: digital, device: dio, channel: 2, function: door}
    - {id: fan-relay, name: Plant room fan, kind: relay, device: dio, channel: 1}
    - {id: boiler, name: Boiler, kind: temperature, device: w1, sensor: 28-0316a2795bff}
alarms:
  rules:
    - {id: door-open, target: door-main, quantity: digital_input, condition: high, high: 0.5}
control:
  linkage:
    - {id: door-fan, when: {input: door-main, state: on}, then: {point: fan-relay, action: on}}
"""

#: Probes on the simulated bus: the configured one and two not named yet.
BOILER, SPARE_1, SPARE_2 = "28-0316a2795bff", "28-0516a1b2c3d4", "28-0617e5f6a7b8"
T_SIM = 1_765_000_000.0  # the simulated probes' time [s]


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    path = tmp_path / "site.yaml"
    path.write_text(IO_SITE, encoding="utf-8")
    cfg = parse_config(IO_SITE, str(path))
    data = tmp_path / "data"
    data.mkdir()
    W1Simulator(data / "w1", [BOILER, SPARE_1, SPARE_2], clock=lambda: T_SIM).write_all()
    storage = open_storage(cfg.storage, data, timezone=cfg.site.timezone)
    gw = Gateway(cfg, data_dir=data, config_path=path, storage=storage)
    yield gw
    gw.storage.close()


@pytest.fixture
def admin(client: TestClient) -> dict[str, str]:
    add_user(client, "alice", "admin")
    return {"X-CSRF-Token": login(client, "alice")}


def test_the_io_section_lists_every_point_with_its_settings_and_the_devices(
    client: TestClient, admin: dict[str, str]
) -> None:
    r = client.get("/api/v1/config/io")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["w1_root"] == "w1"
    assert [(p["id"], p["kind"]) for p in body["points"]] == [
        ("gas-main", "pulse"),
        ("door-main", "digital"),
        ("fan-relay", "relay"),
        ("boiler", "temperature"),
    ]
    gas = body["points"][0]
    assert (gas["weight"], gas["unit"], gas["medium"], gas["contact"], gas["debounce"]) == (
        0.01,
        "m3",
        "gas",
        "NO",
        0.1,
    )
    channels = {d["id"]: d["channels"] for d in body["devices"]}
    # the profiles' inputs and outputs: DIO-4/2 four inputs (also counting pulses) and two relays,
    # AIO-2/2 two analog inputs and outputs, the pulse concentrator seven pulse inputs
    assert channels["dio"] == {"pulse": [1, 2, 3, 4], "digital": [1, 2, 3, 4], "relay": [1, 2]}
    assert channels["aio"] == {"analog-in": [1, 2], "analog-out": [1, 2]}
    assert channels["pulses"] == {"pulse": [1, 2, 3, 4, 5, 6, 7]} and channels["w1"] == channels["vu"] == {}
    assert [(d["id"], d["onewire"]) for d in body["devices"]] == [
        ("vu", False),
        ("dio", False),
        ("aio", False),
        ("pulses", False),
        ("w1", True),
    ]


def test_a_reader_cannot_see_or_change_the_io_configuration(client: TestClient) -> None:
    add_user(client, "rita", "reader")
    csrf = login(client, "rita")
    assert client.get("/api/v1/config/io").status_code == 403
    body = {
        "kind": "pulse",
        "id": "water",
        "device": "pulses",
        "channel": 2,
        "medium": "water",
        "unit": "m3",
        "weight": 0.001,
    }
    assert (
        client.post("/api/v1/config/io/points", json=body, headers={"X-CSRF-Token": csrf}).status_code == 403
    )


def test_a_pulse_input_is_added_applied_written_back_and_audited(
    client: TestClient, gateway: Gateway, admin: dict[str, str]
) -> None:
    body = {
        "kind": "pulse",
        "id": "water-main",
        "name": "Water meter",
        "device": "pulses",
        "channel": 2,
        "medium": "water",
        "unit": "l",
        "weight": 10,
    }
    r = client.post("/api/v1/config/io/points", json=body, headers=admin)
    assert r.status_code == 201, r.text
    assert r.json()["point"]["weight"] == 10.0 and r.json()["point"]["unit"] == "l"
    assert "no restart needed" in r.json()["applied"]
    # in force now: the read side lists it, with the pulse weight's unit
    io = client.get("/api/v1/io").json()["points"]
    water = next(p for p in io if p["id"] == "water-main")
    assert (water["kind"], water["weight"], water["unit"], water["medium"]) == ("pulse", 10.0, "l", "water")
    # written back to the site file
    assert gateway.config_path is not None
    written = parse_config(gateway.config_path.read_text(), "site.yaml")
    assert written.io is not None and [p.id for p in written.io.points][-1] == "water-main"
    # and audited: who, section io, before without and after with the point
    assert gateway.event_log.wait_written(10.0)
    entries = client.get("/api/v1/audit", params={"action": "config.write"}).json()["entries"]
    assert [(e["actor"], e["target"]) for e in entries] == [("alice", "io")]
    after = [p["id"] for p in entries[0]["after"]["points"]]
    before = [p["id"] for p in entries[0]["before"]["points"]]
    assert "water-main" in after and "water-main" not in before


@pytest.mark.parametrize(
    ("body", "loc", "words"),
    [
        # a pulse weight must be positive
        (
            {"kind": "pulse", "id": "p", "device": "pulses", "channel": 3, "weight": 0},
            ["body", "weight"],
            "greater than 0",
        ),
        # a gas meter does not count in kWh
        (
            {
                "kind": "pulse",
                "id": "p",
                "device": "pulses",
                "channel": 3,
                "medium": "gas",
                "unit": "kWh",
                "weight": 1,
            },
            ["body"],
            "gas pulse meter counts in m3 or l",
        ),
        # the pulse concentrator has 7 inputs (site check, located inside the point)
        (
            {"kind": "pulse", "id": "p", "device": "pulses", "channel": 9, "weight": 1},
            ["body", "channel"],
            "channel 9",
        ),
        # a digital input's channel that another digital point uses
        (
            {"kind": "digital", "id": "d", "device": "dio", "channel": 2},
            ["body", "channel"],
            "already used by point 'door-main'",
        ),
        # not a kind of point
        ({"kind": "valve", "id": "v", "device": "dio"}, ["body", "kind"], "pulse, digital, relay"),
        # an analog range must span an interval
        (
            {"kind": "analog-in", "id": "a", "device": "aio", "channel": 1, "range": [5, 5]},
            ["body"],
            "non-zero interval",
        ),
        # a probe id that is not a w1 temperature probe
        (
            {"kind": "temperature", "id": "t", "device": "w1", "sensor": "12-abc"},
            ["body", "sensor"],
            "pattern",
        ),
        # a probe already named
        (
            {"kind": "temperature", "id": "t", "device": "w1", "sensor": BOILER},
            ["body", "sensor"],
            "already used by point 'boiler'",
        ),
    ],
)
def test_a_refused_point_is_a_422_naming_the_field(
    client: TestClient,
    gateway: Gateway,
    admin: dict[str, str],
    body: dict[str, object],
    loc: list[str],
    words: str,
) -> None:
    before = gateway.config
    r = client.post("/api/v1/config/io/points", json=body, headers=admin)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert any(d["loc"] == loc and words in d["msg"] for d in detail), detail
    assert gateway.config is before  # nothing applied


def test_every_kind_of_point_can_be_added(client: TestClient, admin: dict[str, str]) -> None:
    bodies = [
        {
            "kind": "digital",
            "id": "q1-trip",
            "device": "dio",
            "channel": 1,
            "function": "breaker-sd",
            "contact": "NC",
        },
        {"kind": "relay", "id": "horn", "device": "dio", "channel": 2, "mode": "pulse", "pulse_duration": 2},
        {
            "kind": "analog-in",
            "id": "tank",
            "device": "aio",
            "channel": 1,
            "signal": "4-20mA",
            "range": [0, 6],
            "unit": "bar",
        },
        {
            "kind": "analog-out",
            "id": "valve",
            "device": "aio",
            "channel": 1,
            "signal": "0-10V",
            "range": [0, 100],
            "unit": "%",
        },
        {"kind": "temperature", "id": "spare", "device": "w1", "sensor": SPARE_1, "offset": -0.5},
    ]
    for body in bodies:
        r = client.post("/api/v1/config/io/points", json=body, headers=admin)
        assert r.status_code == 201, (body, r.text)
    io = {p["id"]: p for p in client.get("/api/v1/io").json()["points"]}
    assert io["q1-trip"]["labels"] == ["normal", "tripped"]
    assert io["horn"]["mode"] == "pulse"
    assert io["tank"]["range"] == [0.0, 6.0] and io["tank"]["unit"] == "bar"
    assert io["valve"]["kind"] == "analog-out"
    assert io["spare"]["sensor"] == SPARE_1


def test_a_point_is_changed_but_keeps_its_id_and_kind(
    client: TestClient, gateway: Gateway, admin: dict[str, str]
) -> None:
    body = {
        "kind": "pulse",
        "id": "gas-main",
        "name": "Gas (main)",
        "device": "pulses",
        "channel": 1,
        "medium": "gas",
        "unit": "m3",
        "weight": 0.1,
    }
    r = client.put("/api/v1/config/io/points/gas-main", json=body, headers=admin)
    assert r.status_code == 200, r.text
    assert r.json()["point"]["weight"] == 0.1 and r.json()["point"]["name"] == "Gas (main)"
    assert gateway.config.io is not None and gateway.config.io.points[0].name == "Gas (main)"
    r = client.put("/api/v1/config/io/points/gas-main", json={**body, "kind": "digital"}, headers=admin)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "kind"]
    r = client.put("/api/v1/config/io/points/gas-main", json={**body, "id": "gas-2"}, headers=admin)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "id"]
    assert client.put("/api/v1/config/io/points/nope", json=body, headers=admin).status_code == 404


def test_a_point_in_use_is_not_removed_and_the_users_are_named(
    client: TestClient, gateway: Gateway, admin: dict[str, str]
) -> None:
    r = client.delete("/api/v1/config/io/points/door-main", headers=admin)
    assert r.status_code == 409
    assert "alarm rule 'door-open'" in r.json()["detail"] and "linkage rule 'door-fan'" in r.json()["detail"]
    r = client.delete("/api/v1/config/io/points/fan-relay", headers=admin)
    assert r.status_code == 409 and "linkage rule 'door-fan'" in r.json()["detail"]
    # a point nothing uses goes
    assert client.delete("/api/v1/config/io/points/gas-main", headers=admin).status_code == 204
    assert gateway.config.io is not None and [p.id for p in gateway.config.io.points] == [
        "door-main",
        "fan-relay",
        "boiler",
    ]
    assert client.delete("/api/v1/config/io/points/gas-main", headers=admin).status_code == 404


def test_onewire_discovery_lists_the_probes_their_temperature_and_their_point(
    client: TestClient, admin: dict[str, str]
) -> None:
    r = client.get("/api/v1/config/onewire")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["error"] is None and body["root"].endswith("/data/w1")
    assert [m["id"] for m in body["masters"]] == ["w1"]
    probes = {p["sensor"]: p for p in body["probes"]}
    assert sorted(probes) == [BOILER, SPARE_1, SPARE_2]
    assert (probes[BOILER]["point"], probes[BOILER]["point_name"]) == ("boiler", "Boiler")
    assert probes[SPARE_1]["point"] is None and probes[SPARE_1]["family"] == "DS18B20"
    # the simulated probe's temperature at 1/16 °C resolution, as the kernel reports it
    expected = int(round(probe_temperature(SPARE_1, T_SIM) * 16) * 1000 / 16) / 1000
    assert probes[SPARE_1]["temperature"] == pytest.approx(expected, abs=1e-9)
    # naming a probe: a temperature point for it, then discovery shows it assigned
    body = {"kind": "temperature", "id": "return-temp", "name": "Return", "device": "w1", "sensor": SPARE_2}
    assert client.post("/api/v1/config/io/points", json=body, headers=admin).status_code == 201
    probes = {p["sensor"]: p for p in client.get("/api/v1/config/onewire").json()["probes"]}
    assert (probes[SPARE_2]["point"], probes[SPARE_2]["point_name"]) == ("return-temp", "Return")


def test_a_configured_probe_that_is_unplugged_is_listed_as_missing(
    client: TestClient, gateway: Gateway, admin: dict[str, str]
) -> None:
    (gateway.data_dir / "w1" / BOILER / "w1_slave").unlink()
    (gateway.data_dir / "w1" / BOILER).rmdir()
    probes = {p["sensor"]: p for p in client.get("/api/v1/config/onewire").json()["probes"]}
    assert probes[BOILER]["present"] is False and probes[BOILER]["error"] == "not found on the bus"
    assert probes[BOILER]["point"] == "boiler"


def test_onewire_discovery_says_why_when_there_is_no_bus_folder(
    client: TestClient, gateway: Gateway, admin: dict[str, str]
) -> None:
    import shutil  # lazy: only this test removes the folder

    shutil.rmtree(gateway.data_dir / "w1")
    body = client.get("/api/v1/config/onewire").json()
    assert "does not exist" in body["error"]
    assert [p["sensor"] for p in body["probes"]] == [BOILER]  # the configured one, missing


def test_demand_settings_are_changed_through_the_audited_path(
    client: TestClient, gateway: Gateway, admin: dict[str, str]
) -> None:
    r = client.get("/api/v1/config/demand")
    assert r.status_code == 200, r.text
    assert (r.json()["interval"], r.json()["method"], r.json()["subintervals"]) == (15, "block", 1)
    assert "energy_active_import" in r.json()["registers"]
    body = {"interval": 30, "method": "sliding", "subintervals": 6, "quantities": ["energy_active_import"]}
    r = client.put("/api/v1/config/demand", json=body, headers=admin)
    assert r.status_code == 200, r.text
    assert (r.json()["interval"], r.json()["subintervals"]) == (30, 6)
    assert "maximum demands measured so far are kept" in r.json()["effect"]
    assert gateway.config.energy is not None and gateway.config.energy.demand.interval == 30
    assert gateway.event_log.wait_written(10.0)
    entries = client.get("/api/v1/audit", params={"action": "config.write"}).json()["entries"]
    assert [e["target"] for e in entries] == ["energy"]
    # a 7-min interval does not exist; 15 min cannot be split into 7 whole-second subintervals
    r = client.put("/api/v1/config/demand", json={**body, "interval": 7}, headers=admin)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][:2] == ["body", "interval"]
    r = client.put(
        "/api/v1/config/demand", json={"interval": 15, "method": "sliding", "subintervals": 7}, headers=admin
    )
    assert r.status_code == 422 and "whole-second subintervals" in r.json()["detail"][0]["msg"]


def test_the_demo_1wire_bus_carries_its_named_and_its_unnamed_probes(tmp_path: Path) -> None:
    import asyncio  # lazy: only this test runs a simulator

    from meterhub.cli.core import DEMO_SITE  # lazy: only this test reads the demo site
    from meterhub.drivers.io.onewire import discover  # lazy: as above
    from meterhub.sim.base import SimContext  # lazy: as above
    from meterhub.sim.io import w1_simulator  # lazy: as above

    demo = parse_config(DEMO_SITE.read_text(encoding="utf-8"), str(DEMO_SITE))
    assert demo.simulation is not None and demo.simulation.w1_probes == ["28-0516a1b2c3d4", "28-0617e5f6a7b8"]
    bus = next(b for b in demo.buses if b.id == "onewire")
    devices = [d for d in demo.devices if d.bus == bus.id]

    async def found() -> list[str]:
        sim = await w1_simulator(SimContext(demo, bus, devices, model=None, data_dir=tmp_path))  # type: ignore[arg-type]
        try:
            return discover(tmp_path / "w1")
        finally:
            await sim.close()

    # the two points of the demo's io section and the two probes nobody has named yet
    assert asyncio.run(found()) == [
        "28-0316a2795bff",
        "28-0416b1a9c2ee",
        "28-0516a1b2c3d4",
        "28-0617e5f6a7b8",
    ]


def test_the_simulated_pulse_concentrator_counts_on_an_input_added_later() -> None:
    from meterhub.config.io import PulsePoint  # lazy: only this test builds a point
    from meterhub.model.quantities import Q  # lazy: as above
    from meterhub.sim.io import IOSimulation  # lazy: as above
    from meterhub.sim.physics import SiteModel  # lazy: as above

    cfg = parse_config(IO_SITE, "site.yaml")
    model = SiteModel(cfg, clock=lambda: T_SIM)
    sim = IOSimulation(cfg, clock=lambda: T_SIM)
    model.followers.append(sim.reconfigure)  # as the Modbus simulator does (sim/modbus_server.py)
    assert sim.value("pulses", Q.PULSE_COUNT, channel=2) is None  # nothing wired to input 2 yet
    water = PulsePoint(
        kind="pulse", id="water", device="pulses", channel=2, medium="water", unit="l", weight=10
    )
    assert cfg.io is not None
    model.reconfigure(
        cfg.model_copy(update={"io": cfg.io.model_copy(update={"points": [*cfg.io.points, water]})})
    )
    # whole 10-l pulses of the simulated consumption since the simulators' epoch
    assert (
        sim.value("pulses", Q.PULSE_COUNT, channel=2) == IOSimulation.consumption(water, T_SIM) * 1000 // 10
    )
    # the meter on the input stays what it is: a weight corrected in the site file does not change its counter
    heavier = water.model_copy(update={"weight": 100.0})
    before = sim.value("pulses", Q.PULSE_COUNT, channel=2)
    model.reconfigure(
        cfg.model_copy(update={"io": cfg.io.model_copy(update={"points": [*cfg.io.points, heavier]})})
    )
    assert sim.value("pulses", Q.PULSE_COUNT, channel=2) == before
