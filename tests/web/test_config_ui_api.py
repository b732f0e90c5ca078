"""``/api/v1/config/billing``, added for the configuration page's billing tab (issue 16): the monthly
billing schedule of seed 002 appendix 4 (day 1–28, hour 0–23 local time), changed through the same
validated, written-back, audited path as every other configuration change."""

from __future__ import annotations

from fastapi.testclient import TestClient

from meterhub.runtime import Gateway


def test_admin_changes_the_billing_schedule_and_it_is_written_back(
    client: TestClient, gateway: Gateway, admin: dict[str, str]
) -> None:
    assert client.get("/api/v1/config/billing").json() == {
        "day": 1,
        "hour": 0,
        "automatic": True,
        "reset_max_demand": True,
        "history": 24,
    }
    body = {"day": 28, "hour": 23, "automatic": False, "reset_max_demand": False, "history": 12}
    r = client.put("/api/v1/config/billing", json=body, headers=admin)
    assert r.status_code == 200, r.text
    assert r.json() == body
    assert gateway.config.energy is not None and gateway.config.energy.billing.day == 28
    assert gateway.config_path is not None
    text = gateway.config_path.read_text(encoding="utf-8")
    assert "day: 28" in text and "hour: 23" in text


def test_a_billing_day_that_not_every_month_has_is_refused_by_field(
    client: TestClient, gateway: Gateway, admin: dict[str, str]
) -> None:
    for bad, loc in (({"day": 29}, ["body", "day"]), ({"hour": 24}, ["body", "hour"])):
        r = client.put("/api/v1/config/billing", json=bad, headers=admin)
        assert r.status_code == 422, r.text
        assert r.json()["detail"][0]["loc"] == loc
    r = client.put("/api/v1/config/billing", json={"month": 3}, headers=admin)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "month"]
    assert client.get("/api/v1/config/billing").json()["day"] == 1


def test_a_reader_cannot_change_billing(client: TestClient, reader: dict[str, str]) -> None:
    r = client.put("/api/v1/config/billing", json={"day": 5}, headers=reader)
    assert r.status_code == 403


def test_admin_sets_the_capacity_floor(client: TestClient, gateway: Gateway, admin: dict[str, str]) -> None:
    assert client.get("/api/v1/config/capacity").json() == {"minimum": 0.0}
    r = client.put("/api/v1/config/capacity", json={"minimum": 2500.0}, headers=admin)
    assert r.status_code == 200 and r.json() == {"minimum": 2500.0}
    assert gateway.config.energy is not None and gateway.config.energy.capacity_minimum == 2500.0
    for bad, loc in (({"minimum": -1}, ["body", "minimum"]), ({"floor": 1}, ["body", "floor"])):
        r = client.put("/api/v1/config/capacity", json=bad, headers=admin)
        assert r.status_code == 422 and loc in [d["loc"] for d in r.json()["detail"]]
    assert client.get("/api/v1/config/capacity").json() == {"minimum": 2500.0}


def test_admin_sets_load_profiles_and_a_bad_one_is_refused_by_field(
    client: TestClient, gateway: Gateway, admin: dict[str, str]
) -> None:
    assert client.get("/api/v1/config/load-profiles").json() == {"profiles": []}
    good = {"profiles": [{"circuit": "hvac", "interval": 5, "quantities": ["active_power"]}]}
    r = client.put("/api/v1/config/load-profiles", json=good, headers=admin)
    assert r.status_code == 200 and r.json() == good
    assert gateway.config.energy is not None and gateway.config.energy.profiles[0].interval == 5
    for bad, loc in (
        ({"circuit": "nowhere"}, ["body", "energy", "profiles", "0", "circuit"]),
        ({"circuit": "hvac", "interval": 7}, ["body", "profiles", 0, "interval"]),
        ({"circuit": "hvac", "quantities": ["watts"]}, ["body", "profiles", 0, "quantities"]),
    ):
        r = client.put("/api/v1/config/load-profiles", json={"profiles": [bad]}, headers=admin)
        assert r.status_code == 422, r.text
        assert loc in [d["loc"] for d in r.json()["detail"]], r.text
    twice = {"profiles": [{"circuit": "hvac"}, {"circuit": "hvac"}]}
    r = client.put("/api/v1/config/load-profiles", json=twice, headers=admin)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "profiles", 1, "circuit"]
    assert client.get("/api/v1/config/load-profiles").json() == good


def test_admin_adds_and_removes_a_bus(client: TestClient, gateway: Gateway, admin: dict[str, str]) -> None:
    body = {"id": "rs485", "kind": "modbus-rtu", "serial": "/dev/ttyUSB0", "baud": 19200, "parity": "E"}
    r = client.post("/api/v1/config/buses", json=body, headers=admin)
    assert r.status_code == 201, r.text
    bus = next(b for b in gateway.config.buses if b.id == "rs485")
    assert (bus.serial, bus.baud, bus.parity) == ("/dev/ttyUSB0", 19200, "E")
    assert client.post("/api/v1/config/buses", json=body, headers=admin).status_code == 409
    r = client.post("/api/v1/config/buses", json={**body, "id": "x", "baud": 12}, headers=admin)
    assert r.status_code == 422 and ["body", "baud"] in [d["loc"] for d in r.json()["detail"]]
    r = client.delete("/api/v1/config/buses/panel", headers=admin)
    assert r.status_code == 409 and "devices meter, m1, vu, m2" in r.text
    assert client.delete("/api/v1/config/buses/nowhere", headers=admin).status_code == 404
    assert client.delete("/api/v1/config/buses/rs485", headers=admin).status_code == 204
    assert [b.id for b in gateway.config.buses] == ["panel"]
