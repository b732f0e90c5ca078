"""Refused data is visible: /api/v1/devices says why a device's values are not used, invalid readings
never reach the live API, and the register guard's quarantines and pending counters are listed and can
be confirmed by an admin (issue 10, "Plausibility" and "Registers, one owner")."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from meterhub.energy.pipeline import EnergyPipeline
from meterhub.model.quantities import Q
from meterhub.model.readings import Quality, Reading
from meterhub.model.topology import Phase
from meterhub.runtime import Gateway
from meterhub.web.app import create_app

from .conftest import add_user, login, make_gateway

# 2025-11-22 10:02:03 in Berlin (UTC+1) = 09:02:03 UTC
T0 = 1_763_802_123.0


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[TestClient, Gateway, Clock]]:
    gw = make_gateway(tmp_path, public_live=True)
    clock = Clock(T0)
    gw.energy = EnergyPipeline(gw.config, gw.storage, clock=clock)
    with TestClient(create_app(gw)) as c:
        yield c, gw, clock
    gw.storage.close()


def emit(gw: Gateway, clock: Clock, batch: list[Reading]) -> None:
    clock.t = max(clock.t, max(r.ts for r in batch))
    gw.emit(batch)


def devices(client: TestClient) -> dict[str, dict[str, Any]]:
    return {d["id"]: d for d in client.get("/api/v1/devices").json()}


def test_a_device_serving_nan_for_everything_shows_all_values_nan_not_plain_online(
    setup: tuple[TestClient, Gateway, Clock],
) -> None:
    client, gw, clock = setup
    gw.status["m2"].ok(T0)
    # the PV module (one circuit, pv) answers, but every value is NaN (the Modbus source marks them INVALID)
    emit(
        gw,
        clock,
        [
            Reading(T0, "pv", q, Phase.L1, math.nan, Quality.INVALID)
            for q in (Q.VOLTAGE, Q.CURRENT, Q.ACTIVE_POWER)
        ],
    )
    row = devices(client)["m2"]
    assert row["status"] == "online"
    assert row["data"] == "error"
    assert row["data_message"] == "all values NaN since 10:02:03"  # Europe/Berlin
    assert row["counters"]["refused_values"] == 3
    # nothing of it is in the live values
    assert [r for r in client.get("/api/v1/live").json()["readings"] if r["circuit"] == "pv"] == []
    # a good value again: no longer "all values NaN"; the refusals of the last minutes stay a warning
    emit(gw, clock, [Reading(T0 + 1, "pv", Q.VOLTAGE, Phase.L1, 231.0)])
    row = devices(client)["m2"]
    assert row["data"] == "warning"
    assert row["data_message"].startswith("3 values not a number since 10:02 (last: ")
    assert devices(client)["meter"]["data"] == "ok" and devices(client)["meter"]["data_message"] is None


def test_out_of_range_values_are_counted_with_the_time_and_the_live_value_stays_the_last_good_one(
    setup: tuple[TestClient, Gateway, Clock],
) -> None:
    client, gw, clock = setup
    emit(gw, clock, [Reading(T0, "hvac", Q.VOLTAGE, Phase.L1, 230.0)])
    # 3.4e38 V (a float32 maximum), 1000 V (above 2 × 230 V) and 70.5 Hz are out of range
    emit(
        gw,
        clock,
        [
            Reading(T0 + 1, "hvac", Q.VOLTAGE, Phase.L1, 3.4e38),
            Reading(T0 + 1, "hvac", Q.VOLTAGE, Phase.L2, 1000.0),
            Reading(T0 + 1, "hvac", Q.FREQUENCY, Phase.TOTAL, 70.5),
        ],
    )
    row = devices(client)["m1"]
    assert row["data"] == "warning"
    assert row["data_message"].startswith("3 values out of range since 10:02 (last: ")
    assert row["counters"] == {"refused_values": 3, "quarantined_steps": 0, "pending_readings": 0}
    live = {
        (r["quantity"], r["phase"]): r for r in client.get("/api/v1/live?circuit=hvac").json()["readings"]
    }
    assert live[("voltage", "L1")]["value"] == 230.0 and live[("voltage", "L1")]["quality"] == "good"
    assert ("voltage", "L2") not in live and ("frequency", "total") not in live
    # 15 min later with nothing new refused: the state is ok again, the message keeps the history
    clock.t = T0 + 1 + 901
    row = devices(client)["m1"]
    assert row["data"] == "ok" and row["data_message"].startswith("3 values out of range since 10:02")


def _register(gw: Gateway, clock: Clock, k: int, wh: float) -> None:
    emit(gw, clock, [Reading(T0 + k, "grid", Q.ENERGY_ACTIVE_IMPORT, Phase.TOTAL, wh)])


def test_a_register_outlier_is_quarantined_with_its_step_and_the_circuits_rating(
    setup: tuple[TestClient, Gateway, Clock],
) -> None:
    client, gw, clock = setup
    # grid: CT 800/5 → 800 A × 230 V × 2 (margin) × 3 phases = 1.104 MW; 60 Wh per second is 216 kW,
    # 2 kWh in a second 7.2 MW
    for k in range(4):
        _register(gw, clock, k, 1_000_000.0 + 60.0 * k)
    _register(gw, clock, 4, 1_000_000.0 + 180.0 + 2_000.0)  # +2 kWh in 1 s = 7.2 MW: above the rating
    _register(gw, clock, 5, 1_000_000.0 + 300.0)  # the truth: the candidate is contradicted
    row = devices(client)["meter"]
    assert row["data"] == "warning"
    assert row["data_message"] == (
        "register energy_active_import total quarantined: step 2 kWh in 1 s above the circuit's "
        "rating 1.1 MW (1 reading never counted, last at 10:02:07)"
    )
    assert row["counters"]["quarantined_steps"] == 1
    add_user(client, "carol", "reader")
    login(client, "carol")
    regs = client.get("/api/v1/energy/registers?circuit=grid").json()["registers"]
    assert len(regs) == 1
    (reg,) = regs
    assert reg["state"] == "quarantined" and reg["quarantined"] == 1
    assert reg["value"] == 1_000_300.0 and reg["unit"] == "Wh"
    assert reg["reason"] == "step 2 kWh in 1 s above the circuit's rating 1.1 MW"


def test_a_lower_counter_waits_until_an_admin_confirms_the_meter_change(
    setup: tuple[TestClient, Gateway, Clock], caplog: pytest.LogCaptureFixture
) -> None:
    client, gw, clock = setup
    for k in range(3):
        _register(gw, clock, k, 50_000.0 + 10.0 * k)
    _register(gw, clock, 3, 5.0)  # a new meter, or a glitch? held back until confirmed
    add_user(client, "alice", "admin")
    add_user(client, "bob", "reader")
    assert client.get("/api/v1/energy/registers").status_code == 401
    viewer = {"X-CSRF-Token": login(client, "bob")}
    regs = client.get("/api/v1/energy/registers").json()["registers"]
    (reg,) = [r for r in regs if r["circuit"] == "grid"]
    assert reg["state"] == "pending" and reg["pending"] == 1 and reg["pending_direction"] == "lower"
    assert reg["reason"] == "reading 5 Wh below the register's 50 kWh"
    assert devices(client)["meter"]["counters"]["pending_readings"] == 1
    assert (
        "register energy_active_import total waits since 10:02:06" in devices(client)["meter"]["data_message"]
    )

    body = {"circuit": "grid", "quantity": "energy_active_import", "phase": "total"}
    assert client.post("/api/v1/energy/registers/confirm", json=body, headers=viewer).status_code == 403
    admin = {"X-CSRF-Token": login(client, "alice")}
    bad = client.post(
        "/api/v1/energy/registers/confirm", json={"circuit": "grid", "all": True}, headers=admin
    )
    assert bad.status_code == 422  # unknown keys are refused
    missing = client.post("/api/v1/energy/registers/confirm", json={"circuit": "nope"}, headers=admin)
    assert missing.status_code == 404 and "nope" in missing.text
    notreg = client.post(
        "/api/v1/energy/registers/confirm", json={"circuit": "grid", "quantity": "voltage"}, headers=admin
    )
    assert notreg.status_code == 422 and "not a register quantity" in notreg.text
    nothing = client.post("/api/v1/energy/registers/confirm", json={"circuit": "hvac"}, headers=admin)
    assert nothing.status_code == 409
    with caplog.at_level(logging.INFO, logger="meterhub.audit"):
        r = client.post("/api/v1/energy/registers/confirm", json=body, headers=admin)
    assert r.status_code == 200, r.text
    out = r.json()
    # reset to 0 confirmed: 50 020 Wh + the new counter's 5 Wh
    assert out["registers"][0]["value"] == 50_025.0
    assert out["registers"][0]["state"] == "confirmed"
    assert out["message"] == "meter change of grid energy_active_import total confirmed for 1 register series"
    audit = [rec.getMessage() for rec in caplog.records if rec.name == "meterhub.audit"]
    assert audit == [
        "alice confirmed a meter reset or replacement of grid energy_active_import total: "
        "grid/energy_active_import/total"
    ]


def test_a_waveform_boards_lost_samples_and_duplicate_frames_are_device_counters(
    setup: tuple[TestClient, Gateway, Clock],
) -> None:
    client, gw, _ = setup
    # what WaveformSource hands over for its board (drivers/waveform/source.py)
    gw.status["m1"].extra_counters = lambda: {"lost_samples": 640, "duplicate_frames": 2}
    assert devices(client)["m1"]["counters"] == {
        "refused_values": 0,
        "quarantined_steps": 0,
        "pending_readings": 0,
        "lost_samples": 640,
        "duplicate_frames": 2,
    }


def test_a_serial_number_reaches_the_register_guard_through_the_gateway(
    setup: tuple[TestClient, Gateway, Clock],
) -> None:
    client, gw, clock = setup
    for k in range(3):
        _register(gw, clock, k, 50_000.0 + 10.0 * k)
    gw.device_serial("meter", "A-1")  # what a Modbus source calls (SourceContext.device_serial)
    assert devices(client)["meter"]["serial_number"] == "A-1"
    gw.device_serial("meter", "B-2")  # another meter: its lower counter is taken at once
    _register(gw, clock, 3, 7.0)
    live = {
        (r["quantity"], r["phase"]): r for r in client.get("/api/v1/live?circuit=grid").json()["readings"]
    }
    assert live[("energy_active_import", "total")]["value"] == 50_027.0  # 50 020 Wh + the new meter's 7 Wh
    assert devices(client)["meter"]["serial_number"] == "B-2"
    assert "reset confirmed at 10:02:06" in devices(client)["meter"]["data_message"]
