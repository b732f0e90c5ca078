"""Schemathesis against the ASGI app in-process: every operation of the OpenAPI document, with
generated valid and invalid inputs, as an admin (API token) and anonymously — no server error."""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from meterhub.energy.pipeline import EnergyPipeline
from meterhub.web.app import create_app
from meterhub.web.auth import UserStore

from .conftest import make_gateway

EXAMPLES = 10


@pytest.fixture
def schema_and_token(tmp_path: Path):  # type: ignore[no-untyped-def]
    gw = make_gateway(tmp_path)
    gw.energy = EnergyPipeline(gw.config, gw.storage, clock=gw.clock)  # as Gateway.start() does
    store = UserStore(gw.data_dir)
    store.add("admin", "admin password 1", "admin")
    _, secret = store.create_token("admin", "fuzz")
    app = create_app(gw)
    yield schemathesis.openapi.from_asgi("/openapi.json", app), secret
    gw.energy.close()
    gw.storage.close()


def test_the_openapi_document_is_complete(schema_and_token) -> None:  # type: ignore[no-untyped-def]
    schema, _ = schema_and_token
    paths = set(schema.raw_schema["paths"])
    for p in (
        "/api/v1/circuits/{circuit_id}",
        "/api/v1/devices/{device_id}",
        "/api/v1/users",
        "/api/v1/users/{username}",
        "/api/v1/tokens",
        "/api/v1/site",
        "/api/v1/site/logo",
        "/api/v1/config/tariffs",
        "/api/v1/config/buses/{bus_id}/scan",
        "/api/v1/display",
        "/api/v1/auth/login",
        "/api/v1/setup",
    ):
        assert p in paths, p
    assert "patch" in schema.raw_schema["paths"]["/api/v1/circuits/{circuit_id}"]


@pytest.mark.slow
def test_no_operation_answers_with_a_server_error(schema_and_token) -> None:  # type: ignore[no-untyped-def]
    schema, secret = schema_and_token
    failures: list[str] = []
    operations = [r.ok() for r in schema.get_all_operations()]
    assert len(operations) > 30
    for op in operations:
        if op.path.endswith("/scan"):
            continue  # probing a TCP port per example is slow; covered by test_config_api with a real device
        # as admin every operation runs its handler; anonymous, most stop at the auth check
        for auth, examples in (({"Authorization": f"Bearer {secret}"}, EXAMPLES), ({}, 3)):
            run = _runner(op, auth, failures, examples)
            run()
    assert failures == [], "\n".join(failures)


def _runner(op, headers: dict[str, str], failures: list[str], examples: int):  # type: ignore[no-untyped-def]
    """A hypothesis test over one operation, calling it with ``headers``."""

    @given(case=op.as_strategy())
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def run(case) -> None:  # type: ignore[no-untyped-def]
        response = case.call(headers=headers)
        if response.status_code >= 500:
            failures.append(
                f"{op.method.upper()} {op.path} -> {response.status_code}: {case.as_curl_command()}"
            )

    return run
