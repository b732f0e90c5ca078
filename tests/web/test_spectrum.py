"""Harmonic spectra of a circuit (issue 6): ``GET /api/v1/circuits/{id}/spectrum`` and the circuit page's bars.

The live-server tests run a real gateway reading the simulated ADC board (and a simulated Modbus meter,
which measures no spectrum) over loopback; the others publish spectra into an in-process gateway.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

from meterhub.config.loader import parse_config
from meterhub.model.readings import Quality, Reading, Spectrum
from meterhub.model.topology import Phase
from meterhub.runtime import Gateway
from meterhub.storage import open_storage
from meterhub.web.app import create_app
from meterhub.web.auth import UserStore

from .conftest import T0, add_user, login
from .liveserver import LiveServer

#: A Modbus meter (no spectrum) and the simulated ADC board with a nearly sinusoidal three-phase load
#: ("constant": 3rd 2 %, 5th 1 %) and a switch-mode single-phase load on L2 ("it": THDi ≈ 88 %).
ADC_SITE_YAML = """
site: {name: Spectrum site, timezone: Europe/Berlin, currency: EUR}
buses:
  - {id: panel, kind: modbus-tcp, port: 15999}
  - {id: adc, kind: waveform, port: 15998}
devices:
  - {id: meter, name: Incomer meter, bus: panel, unit: 1, profile: eastron-sdm630}
  - {id: board, name: ADC board, bus: adc, profile: meterhub-adc-8x3}
circuits:
  - {id: grid, name: Grid incomer, device: meter, channels: [1, 2, 3], wiring: 3P4W, purpose: grid,
     ct: {kind: adapter-5a, ratio: 800/5}}
  - {id: press, name: Press, device: board, channels: [1, 2, 3], wiring: 3P4W,
     ct: {kind: current-output, ratio: 100/0.05, burden: 10}}
  - {id: desk, name: Desk IT, device: board, channels: [7], wiring: 1P2W, phases: [L2],
     ct: {kind: voltage-output, ratio: 50/0.333}}
simulation:
  voltage_variation: 0.0
  loads:
    grid: {model: supply, rated_power: 20000}
    press: {model: constant, rated_power: 9000, power_factor: 0.85}
    desk: {model: it, rated_power: 1500, power_factor: 0.95}
"""
ORDERS = list(range(51))


def thd_of(rms: list[float]) -> float:
    """THD by hand: √Σ(h=2…50) rms² / rms of order 1 [%]."""
    return 100.0 * math.sqrt(sum(x * x for x in rms[2:])) / rms[1]


# -- a real gateway reading the simulated ADC board -----------------------------------------------


@pytest.fixture(scope="module")
def adc_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, dict[str, str]]]:
    tmp = tmp_path_factory.mktemp("spectrum")
    with LiveServer(tmp, site_yaml=ADC_SITE_YAML) as srv:
        store = UserStore(srv.data)
        store.add("rita", "reader password 1", "reader")
        _, token = store.create_token("rita", "spectrum test")
        auth = {"Authorization": f"Bearer {token}"}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # the first spectra come after ~1 s of samples
            r = httpx.get(f"{srv.url}/api/v1/circuits/desk/spectrum", headers=auth, timeout=5)
            if r.status_code == 200:
                break
            time.sleep(0.3)
        else:
            pytest.fail(f"no spectrum from the simulated ADC board: {r.status_code} {r.text}")
        yield srv, auth


def spectrum_with_live(
    srv: LiveServer, auth: dict[str, str], circuit: str, quantity: str, phase: str
) -> tuple[dict[str, Any], dict[str, float]]:
    """A spectrum and the live readings of its phase from the same one-second interval (same ts)."""
    for _ in range(40):
        s = httpx.get(
            f"{srv.url}/api/v1/circuits/{circuit}/spectrum",
            params={"quantity": quantity, "phase": phase},
            headers=auth,
            timeout=5,
        )
        assert s.status_code == 200, s.text
        live = httpx.get(f"{srv.url}/api/v1/live", params={"circuit": circuit}, headers=auth, timeout=5)
        values = {
            r["quantity"]: r["value"]
            for r in live.json()["readings"]
            if r["phase"] == phase and r["ts"] == s.json()["ts"]
        }
        if quantity in values:
            return s.json(), values
        time.sleep(0.1)  # a new interval arrived between the two requests
    pytest.fail("the spectrum and the live readings never had the same time stamp")


@pytest.mark.parametrize("quantity", ["voltage", "current"])
@pytest.mark.parametrize("phase", ["L1", "L2", "L3"])
def test_spectrum_of_an_adc_circuit_matches_its_live_values(
    adc_server: tuple[LiveServer, dict[str, str]], quantity: str, phase: str
) -> None:
    srv, auth = adc_server
    s, live = spectrum_with_live(srv, auth, "press", quantity, phase)
    assert (s["circuit"], s["quantity"], s["phase"]) == ("press", quantity, phase)
    assert s["unit"] == {"voltage": "V", "current": "A"}[quantity]
    assert s["orders"] == ORDERS and len(s["rms"]) == len(s["percent_of_fundamental"]) == 51
    assert None not in s["rms"]  # 6400 Hz sampling resolves all 50 orders
    # a nearly sinusoidal signal (THD ≈ 2.6 % voltage, 2.2 % current): the fundamental is the RMS
    assert s["rms"][1] == pytest.approx(live[quantity], rel=5e-3)
    # and all orders together are the RMS whatever the distortion (Parseval)
    assert math.sqrt(sum(x * x for x in s["rms"])) == pytest.approx(live[quantity], rel=5e-3)
    assert s["percent_of_fundamental"][1] == pytest.approx(100.0, abs=1e-9)
    for h in (0, 3, 5, 7):
        assert s["percent_of_fundamental"][h] == pytest.approx(100 * s["rms"][h] / s["rms"][1], rel=1e-9)
    assert s["thd"] == pytest.approx(thd_of(s["rms"]), abs=0.1)
    assert s["thd"] == pytest.approx(live[f"thd_{quantity}"], abs=0.1)  # the THD reading of the interval
    assert s["stale"] is False  # the board is online


def test_a_distorted_current_has_the_models_harmonics(adc_server: tuple[LiveServer, dict[str, str]]) -> None:
    srv, auth = adc_server
    s, live = spectrum_with_live(srv, auth, "desk", "current", "L2")
    pct = s["percent_of_fundamental"]
    # the switch-mode supply of the load model: 3rd 70 %, 5th 45 %, 7th 25 %, 9th 12 % of the fundamental
    for h, expected in ((3, 70.0), (5, 45.0), (7, 25.0), (9, 12.0)):
        assert pct[h] == pytest.approx(expected, abs=1.0), h
    thd = thd_of(s["rms"])
    assert s["thd"] == pytest.approx(thd, abs=0.1) and 80 < thd < 95
    # here the fundamental is well below the RMS: I1 = I / √(1 + THD²)
    assert s["rms"][1] == pytest.approx(live["current"] / math.sqrt(1 + (thd / 100) ** 2), rel=5e-3)
    assert math.sqrt(sum(x * x for x in s["rms"])) == pytest.approx(live["current"], rel=5e-3)
    # the default phase of a single-phase circuit is its own
    default = httpx.get(f"{srv.url}/api/v1/circuits/desk/spectrum", headers=auth, timeout=5).json()
    assert (default["phase"], default["quantity"]) == ("L2", "current")


def test_spectrum_errors_name_the_reason(adc_server: tuple[LiveServer, dict[str, str]]) -> None:
    srv, auth = adc_server
    url = f"{srv.url}/api/v1/circuits"
    r = httpx.get(f"{url}/grid/spectrum", params={"phase": "L1"}, headers=auth, timeout=5)
    assert r.status_code == 404
    assert "no harmonic spectrum source for circuit 'grid'" in r.json()["detail"]
    assert "eastron-sdm630" in r.json()["detail"]
    assert httpx.get(f"{url}/nope/spectrum", headers=auth, timeout=5).status_code == 404
    for params in ({"phase": "L4"}, {"phase": "N"}, {"quantity": "power"}):
        assert httpx.get(f"{url}/press/spectrum", params=params, headers=auth, timeout=5).status_code == 422
    r = httpx.get(f"{url}/desk/spectrum", params={"phase": "L1"}, headers=auth, timeout=5)
    assert r.status_code == 422 and "has no phase L1; it has L2" in r.text
    assert httpx.get(f"{url}/press/spectrum", timeout=5).status_code == 401  # not public: sign in
    circuits = {c["id"]: c["spectrum"] for c in httpx.get(url, headers=auth, timeout=5).json()}
    assert circuits == {"grid": False, "press": True, "desk": True}


@pytest.mark.browser
def test_circuit_page_draws_the_spectrum_bars(adc_server: tuple[LiveServer, dict[str, str]]) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        pytest.skip("Debian chromium is not installed (make sysdeps)")
    srv, _ = adc_server
    shots = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(f"uncaught: {e}"))
        page.goto(f"{srv.url}/#/login")
        page.fill("#login-user", "rita")
        page.fill("#login-pass", "reader password 1")
        page.click("#login-form button[type=submit]")
        sync_api.expect(page.locator("#view")).to_have_attribute("data-page", "overview")

        page.goto(f"{srv.url}/#/circuit/press")
        note = page.locator("#harmonics-note")
        sync_api.expect(note).to_contain_text("Current L1", timeout=15000)
        sync_api.expect(note).to_contain_text("THD")
        assert page.locator("#harmonics canvas").count() == 1
        bars = "window.echarts.getInstanceByDom(document.querySelector('#harmonics')).getOption()"
        assert page.evaluate(f"{bars}.series[0].data.length") == 51
        assert page.evaluate(f"{bars}.xAxis[0].data[50]") == "50"
        page.locator("#h-quantity a", has_text="Voltage").click()
        page.locator("#h-phase a", has_text="L3").click()
        sync_api.expect(note).to_contain_text("Voltage L3", timeout=10000)
        assert page.locator("#h-phase a.active").inner_text() == "L3"
        page.wait_for_timeout(300)
        page.screenshot(path=str(shots / "circuit-spectrum.png"), full_page=True)
        page.locator("#harmonics-panel").screenshot(path=str(shots / "circuit-spectrum-panel.png"))

        page.goto(f"{srv.url}/#/circuit/grid")  # a Modbus meter: no spectrum, no request for one
        sync_api.expect(page.locator("#harmonics-note")).to_have_text(
            "No harmonic data for this circuit: its device does not measure a harmonic spectrum "
            "(THD, where reported, is in the table below)."
        )
        assert page.locator("#harmonics").count() == 0
        page.wait_for_timeout(500)
        browser.close()
    assert errors == []


# -- in-process: the live cache's spectrum store behind the API ----------------------------------


@pytest.fixture
def adc_gateway(tmp_path: Path) -> Iterator[Gateway]:
    """The ADC site without sources running: tests publish spectra themselves."""
    cfg = parse_config(ADC_SITE_YAML, "spectrum-site.yaml")
    data = tmp_path / "data"
    data.mkdir()
    gw = Gateway(cfg, data_dir=data, storage=open_storage(cfg.storage, data, timezone=cfg.site.timezone))
    yield gw
    gw.storage.close()


@pytest.fixture
def adc_client(adc_gateway: Gateway) -> Iterator[TestClient]:
    with TestClient(create_app(adc_gateway)) as c:
        add_user(c, "rita", "reader")
        login(c, "rita")
        yield c


def _spectrum(ts: float, quantity: str, values: list[float]) -> Spectrum:
    return Spectrum(ts, "press", quantity, Phase.L1, tuple(values), Quality.GOOD)


def test_before_the_first_spectrum_the_answer_is_retry_later(adc_client: TestClient) -> None:
    r = adc_client.get("/api/v1/circuits/press/spectrum")
    assert r.status_code == 503 and r.headers["Retry-After"] == "2"
    assert "no current spectrum of circuit 'press' phase L1 measured yet" in r.json()["detail"]


def test_percent_and_thd_come_from_the_published_spectrum(
    adc_client: TestClient, adc_gateway: Gateway
) -> None:
    h = [0.0] * 51
    h[0], h[1], h[5], h[7], h[50] = 0.1, 10.0, 3.0, 4.0, math.nan  # THD = √(3² + 4²)/10 = 50 %
    pct = [100 * x / 10.0 for x in h]
    adc_gateway.emit_spectra(
        [_spectrum(T0, "harmonics_current", h), _spectrum(T0, "harmonics_current_percent", pct)]
    )
    adc_gateway.live.update([Reading(T0, "press", "current", Phase.L1, 11.18)])
    s = adc_client.get(
        "/api/v1/circuits/press/spectrum", params={"quantity": "current", "phase": "L1"}
    ).json()
    assert s["ts"] == "2025-11-22T04:00:00.000Z" and s["unit"] == "A" and s["orders"] == ORDERS
    assert s["rms"][:2] == [0.1, 10.0] and s["rms"][5] == 3.0 and s["rms"][50] is None
    assert s["percent_of_fundamental"][1] == 100.0 and s["percent_of_fundamental"][7] == 40.0
    assert s["thd"] == pytest.approx(50.0)
    assert s["stale"] is True  # no source runs in this gateway: its board is offline, this is its last one
    # an older spectrum arriving late does not replace the newer one
    adc_gateway.emit_spectra([_spectrum(T0 - 1, "harmonics_current", [1.0] * 51)])
    assert adc_client.get("/api/v1/circuits/press/spectrum").json()["rms"][1] == 10.0
    # the older /harmonics view reads the same store
    old = adc_client.get("/api/v1/circuits/press/harmonics", params={"phase": "L1"}).json()
    assert old["available"] and old["quantity"] == "harmonics_current_percent" and old["values"][5] == 30.0


def test_a_source_publishing_rms_only_gets_percent_computed(
    adc_client: TestClient, adc_gateway: Gateway
) -> None:
    h = [0.0] * 51
    h[1], h[3] = 230.0, 4.6
    adc_gateway.emit_spectra([_spectrum(T0, "harmonics_voltage", h)])
    s = adc_client.get("/api/v1/circuits/press/spectrum", params={"quantity": "voltage"}).json()
    assert s["unit"] == "V" and s["percent_of_fundamental"][3] == pytest.approx(2.0)
    assert s["thd"] == pytest.approx(2.0)
    adc_gateway.emit_spectra([_spectrum(T0 + 1, "harmonics_voltage", [0.0] * 51)])  # no voltage at all
    s = adc_client.get("/api/v1/circuits/press/spectrum", params={"quantity": "voltage"}).json()
    assert s["thd"] is None and s["percent_of_fundamental"] == [None] * 51


def test_spectrum_follows_the_live_read_rules(tmp_path: Path) -> None:
    cfg = parse_config(ADC_SITE_YAML, "spectrum-site.yaml")
    cfg.web.public_live = True
    data = tmp_path / "data"
    data.mkdir()
    gw = Gateway(cfg, data_dir=data, storage=open_storage(cfg.storage, data, timezone=cfg.site.timezone))
    gw.emit_spectra([_spectrum(T0, "harmonics_current", [0.0, 5.0] + [0.0] * 49)])
    with TestClient(create_app(gw)) as anonymous:
        assert anonymous.get("/api/v1/circuits/press/spectrum").status_code == 200  # public_live: anyone
        spec = anonymous.get("/openapi.json").json()
    gw.storage.close()
    op = spec["paths"]["/api/v1/circuits/{circuit_id}/spectrum"]["get"]
    params = {p["name"]: p for p in op["parameters"]}
    assert set(params) == {"circuit_id", "quantity", "phase"}
    assert {"404", "422", "503"} <= set(op["responses"])
    body = spec["components"]["schemas"]["HarmonicSpectrumOut"]["properties"]
    assert {
        "circuit",
        "quantity",
        "phase",
        "unit",
        "ts",
        "orders",
        "rms",
        "percent_of_fundamental",
        "thd",
        "stale",
    } == set(body)


def test_anonymous_is_refused_when_the_live_display_is_not_public(adc_gateway: Gateway) -> None:
    with TestClient(create_app(adc_gateway)) as anonymous:
        assert anonymous.get("/api/v1/circuits/press/spectrum").status_code == 401
