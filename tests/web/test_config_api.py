"""Configuration through the API: circuits (CT ratio …), devices, tariffs, interface options, logo."""

from __future__ import annotations

import time
from datetime import datetime

from fastapi.testclient import TestClient

from meterhub.config.loader import parse_config
from meterhub.model.readings import Reading
from meterhub.model.topology import Phase
from meterhub.runtime import Gateway

from .conftest import SITE_YAML

PNG_1PX = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cf00000301010018dd8db00000000049454e44ae426082"
)


def test_admin_changes_ct_ratio_and_it_is_applied_and_written_back(
    client: TestClient, gateway: Gateway, admin: dict[str, str]
) -> None:
    # an E21 behind a conventional CT via the 5 A adapter reports the CT's secondary side: meterhub
    # applies the ratio (enertrek-e21 transformers.secondary_with)
    r = client.post(
        "/api/v1/devices",
        json={"id": "e21", "bus": "panel", "unit": 5, "profile": "enertrek-e21"},
        headers=admin,
    )
    assert r.status_code == 201, r.text
    r = client.post(
        "/api/v1/circuits",
        json={
            "id": "chiller",
            "device": "e21",
            "channels": [1, 2, 3],
            "wiring": "3P4W",
            "ct": {"kind": "adapter-5a", "ratio": "800/5"},
        },
        headers=admin,
    )
    assert r.status_code == 201, r.text
    r = client.patch("/api/v1/circuits/chiller", json={"ct": {"ratio": "1000/5"}}, headers=admin)
    assert r.status_code == 200, r.text
    assert r.json()["ct_ratio"] == "1000/5"
    assert r.json()["ct_kind"] == "adapter-5a"  # untouched fields stay
    assert gateway.config.circuit("chiller").ct.ratio.value == 200.0
    assert gateway.config_path is not None
    text = gateway.config_path.read_text()
    written = parse_config(text, "site.yaml")
    assert written.circuit("chiller").ct.ratio.value == 200.0
    # edited in place: the file's comment, its flow style and the ratio as the user writes it are kept,
    # no default is filled in, and the file before the edit is kept as a timestamped backup beside it
    assert text.startswith(SITE_YAML.splitlines()[0])
    assert "ratio: 1000/5" in text and "ratio: 800/5" in text
    assert "  - {id: hvac, name: HVAC, device: m1, channels: [1, 2, 3], wiring: 3P4W, zone: building}" in text
    assert "poll_interval" not in text
    backups = sorted(gateway.config_path.parent.glob("site.yaml.*"))
    kept = [b.read_text() for b in backups]  # one per edit: the device, the circuit, the new ratio
    assert len(kept) == 3 and SITE_YAML in kept
    assert any("chiller" in k and "1000/5" not in k for k in kept)
    assert client.get("/api/v1/circuits/chiller").json()["ct_ratio"] == "1000/5"
    # the change is recorded with its time: the ratio before it applied since installation
    ct = written.circuit("chiller").ct
    assert (
        ct.ratio_from is not None
        and abs(datetime.fromisoformat(ct.ratio_from).timestamp() - time.time()) < 60
    )
    assert [(h.start, str(h.ratio)) for h in ct.ratio_history] == [(None, "800/5")]


def test_a_ct_ratio_the_device_applies_itself_is_refused_with_the_reason(
    client: TestClient, gateway: Gateway, admin: dict[str, str]
) -> None:
    before = gateway.config_path.read_text() if gateway.config_path is not None else ""
    r = client.patch("/api/v1/circuits/grid", json={"ct": {"ratio": "1000/5"}}, headers=admin)
    assert r.status_code == 409
    assert r.json()["detail"] == (
        "CT ratio 1000/5 refused for circuit 'grid' on device 'meter': eastron-sdm630 reports primary "
        "values; set the CT ratio in the device (its set-up menu or vendor software)"
    )
    r = client.patch("/api/v1/circuits/grid", json={"vt_ratio": "20000/100"}, headers=admin)
    assert r.status_code == 409 and "VT ratio 20000/100 refused for circuit 'grid'" in r.json()["detail"]
    r = client.patch("/api/v1/circuits/hvac", json={"ct": {"ratio": "100/5"}}, headers=admin)
    assert r.status_code == 409
    assert r.json()["detail"].endswith(
        "enertrek-m30 reports primary values (its CTs are built in, seed 000 §3.4.3); "
        "its current input is its own"
    )
    assert gateway.config.circuit("grid").ct.ratio.value == 160.0  # nothing changed
    assert gateway.config_path is None or gateway.config_path.read_text() == before
    # the same ratio again, or other fields, are no CT change and pass
    r = client.patch(
        "/api/v1/circuits/grid", json={"ct": {"ratio": "800/5"}, "zone": "intake"}, headers=admin
    )
    assert r.status_code == 200, r.text


def test_circuit_patch_errors_name_the_field(client: TestClient, admin: dict[str, str]) -> None:
    r = client.patch("/api/v1/circuits/grid", json={"ct": {"ratio": "lots"}}, headers=admin)
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"][:3] == ["body", "ct", "ratio"]
    r = client.patch("/api/v1/circuits/grid", json={"purpose": "heating"}, headers=admin)
    assert r.status_code == 422 and "purpose" in r.json()["detail"][0]["loc"]
    r = client.patch("/api/v1/circuits/grid", json={"colour": "red"}, headers=admin)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "colour"]  # typos are errors
    assert client.patch("/api/v1/circuits/none", json={}, headers=admin).status_code == 404


def test_wiring_change_takes_matching_channels(client: TestClient, admin: dict[str, str]) -> None:
    r = client.patch(
        "/api/v1/circuits/pv", json={"wiring": "3P4W", "zone": "roof", "vt_ratio": "1/1"}, headers=admin
    )
    assert r.status_code == 200, r.text
    assert (r.json()["wiring"], r.json()["channels"], r.json()["zone"]) == ("3P4W", [1, 2, 3], "roof")


def test_reader_and_anonymous_cannot_configure(client: TestClient, reader: dict[str, str]) -> None:
    assert client.patch("/api/v1/circuits/grid", json={"zone": "x"}, headers=reader).status_code == 403
    assert client.get("/api/v1/config").status_code == 403
    client.cookies.clear()
    assert client.patch("/api/v1/circuits/grid", json={"zone": "x"}).status_code == 401
    assert client.get("/api/v1/config").status_code == 401
    assert client.get("/api/v1/config/tariffs").status_code == 401


def test_device_changes_and_removal_rules(
    client: TestClient, gateway: Gateway, admin: dict[str, str]
) -> None:
    r = client.patch("/api/v1/devices/m1", json={"poll_interval": 2.5, "name": "Module one"}, headers=admin)
    assert r.status_code == 200 and r.json()["poll_interval"] == 2.5 and r.json()["name"] == "Module one"
    r = client.patch("/api/v1/devices/m1", json={"profile": "no-such-meter"}, headers=admin)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "profile"]
    r = client.patch("/api/v1/devices/m1", json={"unit": 1}, headers=admin)  # unit 1 is the meter's
    assert r.status_code == 422 and "already used" in r.json()["detail"][0]["msg"]
    assert client.delete("/api/v1/devices/m1", headers=admin).status_code == 409
    made = client.post(
        "/api/v1/devices",
        json={"id": "spare", "bus": "panel", "unit": 9, "profile": "enertrek-m10"},
        headers=admin,
    )
    assert made.status_code == 201, made.text
    assert client.delete("/api/v1/devices/spare", headers=admin).status_code == 204
    assert [d.id for d in gateway.config.devices] == ["meter", "m1", "vu", "m2"]


def test_tariffs_round_trip_and_are_validated(client: TestClient, admin: dict[str, str]) -> None:
    body = {
        "standing_charge": 0.45,
        "rates": [{"id": "peak", "price": 0.34}, {"id": "offpeak", "price": 0.22}],
        "seasons": [
            {
                "start": "01-01",
                "weekday": [{"from": "00:00", "rate": "offpeak"}, {"from": "07:00", "rate": "peak"}],
                "weekend": [{"from": "00:00", "rate": "offpeak"}],
            }
        ],
    }
    r = client.put("/api/v1/config/tariffs", json=body, headers=admin)
    assert r.status_code == 200, r.text
    got = client.get("/api/v1/config/tariffs").json()
    assert [x["price"] for x in got["rates"]] == [0.34, 0.22]
    bad = {"rates": [{"id": "a", "price": 0.3}, {"id": "b", "price": 0.2}]}  # two rates, no schedule
    assert client.put("/api/v1/config/tariffs", json=bad, headers=admin).status_code == 422


def test_a_tariff_change_with_effective_from_round_trips_and_keeps_the_old_tariff(
    client: TestClient, gateway: Gateway, admin: dict[str, str]
) -> None:
    old = {"rates": [{"id": "flat", "price": 0.20}], "effective_from": "2026-01-01"}
    assert client.put("/api/v1/config/tariffs", json=old, headers=admin).status_code == 200
    new = {"rates": [{"id": "flat", "price": 0.30}], "effective_from": "2026-06-02T12:00:00+02:00"}
    r = client.put("/api/v1/config/tariffs", json=new, headers=admin)
    assert r.status_code == 200, r.text
    assert r.json()["effective_from"] == "2026-06-02T12:00:00+02:00"
    got = client.get("/api/v1/config/tariffs").json()
    assert ([x["price"] for x in got["rates"]], got["effective_from"]) == (
        [0.30],
        "2026-06-02T12:00:00+02:00",
    )
    periods = client.get("/api/v1/config/tariffs/history", headers=admin).json()
    assert [(p["from"], p["until"], p["tariffs"]["rates"][0]["price"]) for p in periods] == [
        ("2026-01-01", "2026-06-02T12:00:00+02:00", 0.20),
        ("2026-06-02T12:00:00+02:00", None, 0.30),
    ]
    assert gateway.config_path is not None
    on_disk = parse_config(gateway.config_path.read_text(encoding="utf-8"))
    assert on_disk.energy is not None
    assert [(p.start, p.tariffs.rates[0].price) for p in on_disk.energy.tariff_history] == [
        ("2026-01-01", 0.20)
    ]
    # a start before the current tariff's would rewrite history: 422 naming the field, nothing changed
    r = client.put("/api/v1/config/tariffs", json={**new, "effective_from": "2026-05-01"}, headers=admin)
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"][-1] == "effective_from"
    assert "before the current tariff's start 2026-06-02T12:00:00+02:00" in r.json()["detail"][0]["msg"]
    r = client.put(
        "/api/v1/config/tariffs", json={**new, "effective_from": "2026-06-03T00:00"}, headers=admin
    )
    assert r.status_code == 422 and "no UTC offset" in r.text
    assert len(client.get("/api/v1/config/tariffs/history", headers=admin).json()) == 2


def test_interface_options_and_errors(client: TestClient, gateway: Gateway, admin: dict[str, str]) -> None:
    r = client.patch(
        "/api/v1/site",
        json={
            "title": "Lobby",
            "language": "de",
            "currency": "CHF",
            "co2_factor": 0.12,
            "timezone": "Europe/Zurich",
        },
        headers=admin,
    )
    assert r.status_code == 200, r.text
    assert (r.json()["title"], r.json()["language"], r.json()["currency"]) == ("Lobby", "de", "CHF")
    assert gateway.config.site.co2_factor == 0.12
    r = client.patch("/api/v1/site", json={"timezone": "Mars/Olympus"}, headers=admin)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "timezone"
    assert client.patch("/api/v1/site", json={"language": "fr"}, headers=admin).status_code == 422


def test_logo_upload_is_checked_and_served(client: TestClient, admin: dict[str, str]) -> None:
    bad = client.put("/api/v1/site/logo", files={"file": ("x.png", b"not a png", "image/png")}, headers=admin)
    assert bad.status_code == 415
    assert (
        client.put(
            "/api/v1/site/logo", files={"file": ("x.txt", b"hi", "text/plain")}, headers=admin
        ).status_code
        == 415
    )
    ok = client.put("/api/v1/site/logo", files={"file": ("logo.png", PNG_1PX, "image/png")}, headers=admin)
    assert ok.status_code == 200 and ok.json()["logo"].startswith("/api/v1/site/logo")
    served = client.get("/api/v1/site/logo")
    assert served.content == PNG_1PX and served.headers["content-type"] == "image/png"


def test_ct_picker_offers_seed_sensors(client: TestClient, admin: dict[str, str]) -> None:
    presets = {p["id"]: p for p in client.get("/api/v1/config/ct-presets").json()}
    assert presets["cto-100"]["ratio"] == "100/0.025" and presets["cto-100"]["kind"] == "current-output"
    assert presets["cto-100"]["phase_error"] == round(50 / 60, 3)  # ≤ 50' in the datasheet
    assert presets["ctf-800"]["kind"] == "rogowski"
    assert presets["cta-800"]["ratio"] == "800/5"


def test_today_counts_energy_since_local_midnight(public_client: TestClient, public_gateway: Gateway) -> None:
    gw = public_gateway
    now = gw.clock()
    # hvac register: 5000 Wh an hour ago… well before midnight is not needed: first value counts
    gw.storage.write(
        [
            Reading(now - 2, "hvac", "energy_active_import", Phase.TOTAL, 5000.0),
            Reading(now - 1, "hvac", "energy_active_import", Phase.TOTAL, 5250.0),
            Reading(now - 1, "hvac", "cost", Phase.TOTAL, 0.5),
        ]
    )
    gw.storage.flush()
    body = public_client.get("/api/v1/site/today").json()
    assert body["energy_consumed"] == 250.0
    assert body["cost"] == 0.5 and body["currency"] == "EUR"
    assert body["co2"] == 250.0 / 1000 * 0.4


def test_bus_scan_finds_the_simulated_devices_over_modbus_tcp(tmp_path) -> None:
    """A real pymodbus simulator on a loopback port; the scan identifies every unit's profile."""
    import socket

    import meterhub.runtime.demo  # noqa: F401 - registers the simulators
    from meterhub.config.loader import parse_config
    from meterhub.config.schema import BusKind
    from meterhub.sim.base import SimContext, simulator_factory
    from meterhub.sim.physics import SiteModel
    from meterhub.storage import open_storage
    from meterhub.web.app import create_app

    from .conftest import SITE_YAML, TestClient, add_user, login

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    text = SITE_YAML.replace("port: 15999", f"port: {port}") + (
        "simulation:\n  loads:\n    grid: {model: supply, rated_power: 20000}\n"
        "    hvac: {model: hvac, rated_power: 6000}\n    pv: {model: pv, rated_power: 3000}\n"
    )
    cfg = parse_config(text, "scan-site.yaml")
    data = tmp_path / "data"
    gw = Gateway(cfg, data_dir=data, storage=open_storage(cfg.storage, data, timezone="UTC"))
    factory = simulator_factory(BusKind.MODBUS_TCP)
    assert factory is not None
    with TestClient(create_app(gw)) as client:
        server = client.portal.call(factory, SimContext(cfg, cfg.buses[0], list(cfg.devices), SiteModel(cfg)))  # type: ignore[union-attr]
        try:
            add_user(client, "alice", "admin")
            headers = {"X-CSRF-Token": login(client, "alice")}
            r = client.post(
                "/api/v1/config/buses/panel/scan", json={"units": "1-5", "timeout": 0.3}, headers=headers
            )
            assert r.status_code == 200, r.text
            found = {d["unit"]: d for d in r.json()["devices"]}
            assert set(found) == {1, 2, 3, 4}
            assert r.json()["silent"] == 1
            assert "eastron-sdm630" in found[1]["candidates"] and found[1]["configured"] == "meter"
            assert "enertrek-m30" in found[2]["candidates"] and found[2]["configured"] == "m1"
            assert "enertrek-v10" in found[3]["candidates"] and found[3]["configured"] == "vu"
            assert "enertrek-m10" in found[4]["candidates"] and found[4]["configured"] == "m2"
            bad = client.post("/api/v1/config/buses/panel/scan", json={"units": "0-999"}, headers=headers)
            assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "units"]
        finally:
            client.portal.call(server.close)  # type: ignore[union-attr]
    gw.storage.close()


def test_config_never_echoes_a_database_password(
    client: TestClient, gateway: Gateway, admin: dict[str, str]
) -> None:
    gateway.config.storage.dsn = "postgresql://meter:s3cret@db.local/meterhub"
    body = client.get("/api/v1/config").json()
    assert body["storage"]["dsn"] == "postgresql://meter:***@db.local/meterhub"
    assert "s3cret" not in client.get("/api/v1/config").text
