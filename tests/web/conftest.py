"""Fixtures for the web tests: a Gateway with real SQLite storage, no sources; tests publish readings."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

with warnings.catch_warnings():
    # starlette warns once, at import, that it prefers the httpx2 package; the client works with httpx.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

from meterhub.config.loader import parse_config
from meterhub.config.schema import SiteConfig
from meterhub.model.readings import Reading
from meterhub.model.topology import Phase
from meterhub.runtime import Gateway
from meterhub.storage import open_storage
from meterhub.web.app import create_app

SITE_YAML = """
site: {name: Test site, timezone: Europe/Berlin, currency: EUR, co2_factor: 0.4}
buses:
  - {id: panel, kind: modbus-tcp, port: 15999}
devices:
  - {id: meter, name: Incomer meter, bus: panel, unit: 1, profile: eastron-sdm630}
  - {id: m1, name: Module 1, bus: panel, unit: 2, profile: enertrek-m30}
  - {id: vu, name: Voltage unit, bus: panel, unit: 3, profile: enertrek-v10}
  - {id: m2, name: Module 2, bus: panel, unit: 4, profile: enertrek-m10}
circuits:
  - {id: grid, name: Grid incomer, device: meter, channels: [1, 2, 3], wiring: 3P4W, purpose: grid,
     ct: {kind: adapter-5a, ratio: 800/5}}
  - {id: hvac, name: HVAC, device: m1, channels: [1, 2, 3], wiring: 3P4W, zone: building}
  - {id: pv, name: PV roof, device: m2, channels: [1], wiring: 1P2W, purpose: renewable}
"""

T0 = 1_763_784_000.0  # 2025-11-22T04:00:00Z


def site_config(**web: object) -> SiteConfig:
    cfg = parse_config(SITE_YAML, "test-site.yaml")
    if web:
        cfg.web = cfg.web.model_copy(update=web)
    return cfg


def make_gateway(tmp_path: Path, *, public_live: bool = False, write_file: bool = True) -> Gateway:
    cfg = site_config(public_live=public_live)
    path = tmp_path / "site.yaml"
    if write_file:
        path.write_text(SITE_YAML, encoding="utf-8")
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    storage = open_storage(cfg.storage, data, timezone=cfg.site.timezone)
    return Gateway(cfg, data_dir=data, config_path=path if write_file else None, storage=storage)


def readings(ts: float, circuit: str = "hvac", p: float = 3000.0) -> list[Reading]:
    """A consistent three-phase batch: 230 V, P split evenly, PF 0.9 [W, V, A]."""
    out = [
        Reading(ts, circuit, "active_power", Phase.TOTAL, p),
        Reading(ts, circuit, "voltage", Phase.TOTAL, 230.0),
    ]
    for ph in (Phase.L1, Phase.L2, Phase.L3):
        out += [
            Reading(ts, circuit, "active_power", ph, p / 3),
            Reading(ts, circuit, "voltage", ph, 230.0),
            Reading(ts, circuit, "current", ph, p / 3 / 230.0 / 0.9),
        ]
    out.append(Reading(ts, circuit, "power_factor", Phase.TOTAL, 0.9))
    return out


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    gw = make_gateway(tmp_path)
    yield gw
    gw.storage.close()


@pytest.fixture
def public_gateway(tmp_path: Path) -> Iterator[Gateway]:
    gw = make_gateway(tmp_path, public_live=True)
    yield gw
    gw.storage.close()


@pytest.fixture
def client(gateway: Gateway) -> Iterator[TestClient]:
    with TestClient(create_app(gateway)) as c:
        yield c


@pytest.fixture
def public_client(public_gateway: Gateway) -> Iterator[TestClient]:
    with TestClient(create_app(public_gateway)) as c:
        yield c


def add_user(client: TestClient, username: str, role: str, password: str = "correct horse") -> None:
    client.app.state.auth.store.add(username, password, role)  # type: ignore[attr-defined]


def login(client: TestClient, username: str, password: str = "correct horse") -> str:
    """Sign in; returns the CSRF token for changes."""
    r = client.post("/api/v1/auth/login", json={"username": username, "password": password})
    assert r.status_code == 200, r.text
    return str(r.json()["csrf"])


@pytest.fixture
def admin(client: TestClient) -> dict[str, str]:
    add_user(client, "alice", "admin")
    return {"X-CSRF-Token": login(client, "alice")}


@pytest.fixture
def reader(client: TestClient) -> dict[str, str]:
    add_user(client, "rita", "reader")
    return {"X-CSRF-Token": login(client, "rita")}


#: Debian's chromium, started as the machine's notes say: no sandbox as root, no background traffic
#: (the network is loopback only).
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Playwright driving Debian chromium, one per test module (skipped where chromium is missing)."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed (make sysdeps)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()
