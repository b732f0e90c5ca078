"""The API's contract: request bodies refuse unknown keys, no empty body deletes everything, one error
shape, an explicit router list, and routes that see the gateway only through web/deps."""

from __future__ import annotations

import ast
import pkgutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args

import pytest
import yaml
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from pydantic import BaseModel

import meterhub.web.routers
from meterhub.energy.pipeline import EnergyPipeline
from meterhub.model.quantities import SPECTRUM_QUANTITIES
from meterhub.runtime import Gateway
from meterhub.web import app as web_app
from meterhub.web.app import ROUTERS, create_app
from meterhub.web.live_api import HARMONICS_PREFERENCE

from .conftest import add_user, login, make_gateway


@pytest.fixture
def energy_gateway(tmp_path: Path) -> Iterator[Gateway]:
    gw = make_gateway(tmp_path)
    gw.energy = EnergyPipeline(gw.config, gw.storage, clock=gw.clock)  # as Gateway.start() does
    yield gw
    gw.energy.close()
    gw.storage.close()


@pytest.fixture
def energy_client(energy_gateway: Gateway) -> Iterator[tuple[TestClient, dict[str, str]]]:
    with TestClient(create_app(energy_gateway)) as c:
        add_user(c, "alice", "admin")
        yield c, {"X-CSRF-Token": login(c, "alice")}


# -- request models -----------------------------------------------------------------------------------
def _models(annotation: Any) -> Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
        for field in annotation.model_fields.values():
            yield from _models(field.annotation)
    for arg in get_args(annotation):
        yield from _models(arg)


def test_every_request_body_model_refuses_unknown_keys() -> None:
    checked: set[str] = set()
    routes = [r for router in ROUTERS for r in router.routes if isinstance(r, APIRoute)]
    for route in routes:
        for model in (m for p in route.dependant.body_params for m in _models(p.field_info.annotation)):
            if model.__name__.startswith("Body_"):  # FastAPI's wrapper of a form upload (the logo)
                continue
            assert model.model_config.get("extra") == "forbid", f"{route.path}: {model.__name__}"
            checked.add(model.__name__)
    assert {"ResetIn", "TariffsIn", "CircuitPatch", "CTPatch", "SitePatch", "SwitchIn", "Rate"} <= checked


def test_a_misspelt_demand_reset_key_is_refused_and_resets_nothing(
    energy_client: tuple[TestClient, dict[str, str]], energy_gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, admin = energy_client
    calls: list[str | None] = []
    assert energy_gateway.energy is not None
    monkeypatch.setattr(
        energy_gateway.energy, "reset_max_demand", lambda circuit=None: calls.append(circuit) or {}
    )
    r = client.post("/api/v1/energy/demand/reset", json={"circuits": ["hvac"]}, headers=admin)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "circuits"]
    assert calls == []  # before: "circuits" was ignored and every circuit was reset
    assert (
        client.post("/api/v1/energy/demand/reset", json={"circuit": "hvac"}, headers=admin).status_code == 200
    )
    assert (
        client.post("/api/v1/energy/demand/reset", json={"circuit": "nope"}, headers=admin).status_code == 404
    )
    assert calls == ["hvac"]
    # an empty body resets nothing either: every circuit only when asked for in so many words
    for empty in ({}, {"circuit": None}, {"circuit": "hvac", "all": True}):
        assert client.post("/api/v1/energy/demand/reset", json=empty, headers=admin).status_code == 422, empty
    assert client.post("/api/v1/energy/demand/reset", headers=admin).status_code == 422  # no body at all
    assert client.post("/api/v1/energy/demand/reset", json={"all": True}, headers=admin).status_code == 200
    assert calls == ["hvac", None]


def test_an_empty_tariff_body_is_refused_and_keeps_every_rate(
    client: TestClient, gateway: Gateway, admin: dict[str, str]
) -> None:
    rates = {"rates": [{"id": "flat", "price": 0.31}], "standing_charge": 0.4}
    assert client.put("/api/v1/config/tariffs", json=rates, headers=admin).status_code == 200
    r = client.put("/api/v1/config/tariffs", json={}, headers=admin)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "rates"]
    assert [x["price"] for x in client.get("/api/v1/config/tariffs").json()["rates"]] == [0.31]
    assert gateway.config_path is not None
    on_disk = yaml.safe_load(gateway.config_path.read_text(encoding="utf-8"))
    assert [x["price"] for x in on_disk["energy"]["tariffs"]["rates"]] == [0.31]  # the site file kept it
    # removing every rate is possible, but only when asked for in so many words
    r = client.put("/api/v1/config/tariffs", json={"rates": []}, headers=admin)
    assert r.status_code == 200 and r.json()["rates"] == []


def test_an_empty_display_body_is_refused_and_keeps_the_settings(
    client: TestClient, admin: dict[str, str]
) -> None:
    settings = {"mode": "rotate", "rotate_every": 20, "message": "Welcome"}
    r = client.put("/api/v1/display", json=settings, headers=admin)
    assert r.status_code == 200 and r.json()["message"] == "Welcome"
    r = client.put("/api/v1/display", json={}, headers=admin)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "mode"]
    kept = client.get("/api/v1/display").json()
    assert (kept["mode"], kept["rotate_every"], kept["message"]) == ("rotate", 20, "Welcome")


# -- one error shape ----------------------------------------------------------------------------------
def test_domain_errors_are_answered_with_their_family_status_and_one_shape(
    client: TestClient, admin: dict[str, str]
) -> None:
    missing = client.patch("/api/v1/circuits/nope", json={"name": "x"}, headers=admin)
    assert (missing.status_code, missing.json()) == (404, {"detail": "unknown circuit 'nope'"})
    in_use = client.delete("/api/v1/devices/meter", headers=admin)
    assert in_use.status_code == 409
    assert in_use.json() == {"detail": "circuits grid use device 'meter'; change them first"}
    invalid = client.patch("/api/v1/circuits/grid", json={"ct": {"ratio": "800 to 5"}}, headers=admin)
    assert invalid.status_code == 422
    assert invalid.json()["detail"][0]["loc"][:3] == ["body", "ct", "ratio"]
    assert set(invalid.json()["detail"][0]) == {"loc", "msg", "type"}


# -- routers and dependencies -------------------------------------------------------------------------
def test_every_router_module_is_served_from_the_explicit_list() -> None:
    listed = {id(r) for r in ROUTERS}
    for info in pkgutil.iter_modules(meterhub.web.routers.__path__):
        module = __import__(f"meterhub.web.routers.{info.name}", fromlist=["router"])
        assert id(module.router) in listed, info.name


WEB = Path(web_app.__file__).parent
#: Modules that may hold the Gateway: deps (the one view of it) and app (which hands it to deps). The
#: auth modules read the site's web options from it and are reviewed separately.
GATEWAY_HOLDERS = {"deps.py", "app.py", "auth.py", "auth_api.py", "sessions.py"}


def test_routes_see_the_gateway_only_through_deps() -> None:
    for path in sorted(WEB.rglob("*.py")):
        if path.name in GATEWAY_HOLDERS:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imports = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert "meterhub.runtime" not in imports, path.name
        attrs = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
        assert "gateway" not in attrs, path.name


def test_the_spectrum_quantities_come_from_the_catalogue(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    params = doc["paths"]["/api/v1/circuits/{circuit_id}/harmonics"]["get"]["parameters"]
    quantity = next(p for p in params if p["name"] == "quantity")
    schemas = quantity["schema"].get("anyOf", [quantity["schema"]])
    ref = next(s["$ref"] for s in schemas if "$ref" in s).rsplit("/", 1)[-1]
    assert set(doc["components"]["schemas"][ref]["enum"]) == set(SPECTRUM_QUANTITIES)
    assert sorted(HARMONICS_PREFERENCE) == sorted(SPECTRUM_QUANTITIES)
