"""GET /api/v1/commissioning and POST /api/v1/commissioning/fix on an in-process gateway.

Readings are put into the live cache as the HVAC module would deliver them with its CT on L2 reversed
(PF 0.85 lagging, 17 A per phase); the assistant samples them; the fix is applied through the site file.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

from meterhub.checks import load_site
from meterhub.model.audit import AuditEntry
from meterhub.model.readings import Reading
from meterhub.model.topology import Phase
from meterhub.runtime import Gateway
from meterhub.storage import open_storage
from meterhub.web.app import create_app

SITE = """\
site: {name: Commissioning test, timezone: UTC}
buses:
  - {id: panel, kind: modbus-tcp, port: 15998}
devices:
  - {id: m1, name: Module 1, bus: panel, unit: 2, profile: enertrek-m30}
  - {id: vu, name: Voltage unit, bus: panel, unit: 3, profile: enertrek-v10}
circuits:
  - {id: hvac, name: HVAC, device: m1, channels: [1, 2, 3], wiring: 3P4W, voltage_reference: vu}
"""
PHI = math.degrees(math.acos(0.85))  # 31.8° lagging
T0 = 1_780_000_000.0


def hvac_readings(ts: float, reversed_l2: bool) -> list[Reading]:
    out = []
    for k, ph in enumerate((Phase.L1, Phase.L2, Phase.L3)):
        s = 230.0 * 17.0
        sign = -1.0 if (reversed_l2 and k == 1) else 1.0
        out += [
            Reading(ts, "hvac", "active_power", ph, sign * s * math.cos(math.radians(PHI))),
            Reading(ts, "hvac", "reactive_power", ph, sign * s * math.sin(math.radians(PHI))),
            Reading(ts, "hvac", "current", ph, 17.0),
            Reading(ts, "hvac", "voltage", ph, 230.0),
        ]
    return out


class Audit:
    def __init__(self) -> None:
        self.entries: list[AuditEntry] = []

    def record(self, entry: AuditEntry) -> None:
        self.entries.append(entry)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    path = tmp_path / "site.yaml"
    path.write_text(SITE, encoding="utf-8")
    cfg = load_site(path)
    data = tmp_path / "data"
    data.mkdir()
    storage = open_storage(cfg.storage, data, timezone="UTC")
    gw = Gateway(cfg, data_dir=data, config_path=path, storage=storage, clock=lambda: T0)
    with TestClient(create_app(gw)) as c:
        c.app.state.auth.store.add("alice", "correct horse", "admin")  # type: ignore[attr-defined]
        r = c.post("/api/v1/auth/login", json={"username": "alice", "password": "correct horse"})
        c.headers["X-CSRF-Token"] = r.json()["csrf"]
        yield c
    storage.close()


def feed(client: TestClient, first: float, n: int, *, reversed_l2: bool) -> None:
    assistant = client.app.state.commissioning  # type: ignore[attr-defined]
    for k in range(n):
        assistant.gateway.live.update(hvac_readings(first + k, reversed_l2))
        assistant.sample()


def test_reversed_ct_is_reported_fixed_and_rechecked(
    client: TestClient, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = client.get("/api/v1/commissioning").json()
    assert first["circuits"][0]["verdict"] == "insufficient-load"
    feed(client, T0, 12, reversed_l2=True)
    (hvac,) = client.get("/api/v1/commissioning").json()["circuits"]
    assert hvac["verdict"] == "suspect"
    (f,) = hvac["findings"]
    assert (f["id"], f["kind"], f["phase"]) == ("hvac:reversed-ct:L2", "reversed-ct", "L2")
    assert f["evidence"]["angle"] == pytest.approx(PHI - 180.0, abs=0.1)
    assert f["fix"]["patch"] == {"reversed": [False, True, False]}
    assert f["confidence"] > 0.9

    audit = Audit()
    client.app.state.commissioning.gateway.auditor = audit  # type: ignore[attr-defined]
    r = client.post("/api/v1/commissioning/fix", json={"finding": "hvac:reversed-ct:L2"})
    assert r.status_code == 200, r.text
    assert r.json()["applied"] == {"reversed": [False, True, False]}
    assert r.json()["now"]["verdict"] == "insufficient-load"  # checked anew
    assert "reversed: [false, true, false]" in (tmp_path / "site.yaml").read_text(encoding="utf-8")
    assert list(tmp_path.glob("site.yaml.*.bak"))
    (entry,) = [e for e in audit.entries if e.action == "commissioning.fix"]
    assert (entry.actor, entry.action, entry.target) == ("alice", "commissioning.fix", "circuit:hvac")
    assert entry.after == {"reversed": [False, True, False]}

    # the gateway now undoes the reversal: the readings come right
    feed(client, T0 + 100, 12, reversed_l2=False)
    (hvac,) = client.get("/api/v1/commissioning").json()["circuits"]
    assert (hvac["verdict"], hvac["findings"]) == ("ok", [])


def test_fix_refusals(client: TestClient) -> None:
    client.get("/api/v1/commissioning")
    r = client.post("/api/v1/commissioning/fix", json={"finding": "hvac:reversed-ct:L1"})
    assert r.status_code == 404
    assert "is not reported now" in r.json()["detail"]
    assert client.post("/api/v1/commissioning/fix", json={"circuit": "nope"}).status_code == 404
    assert client.post("/api/v1/commissioning/fix", json={}).status_code == 422
    r = client.post("/api/v1/commissioning/fix", json={"circuit": "hvac"})
    assert r.status_code == 409  # nothing to change in the configuration


def test_commissioning_needs_a_signed_in_user(client: TestClient) -> None:
    client.post("/api/v1/auth/logout")
    client.cookies.clear()
    assert client.get("/api/v1/commissioning").status_code == 401
