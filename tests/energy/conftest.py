"""Energy fixtures: site configs and the storage backends of ``tests/storage/conftest.py`` (reused, so
the same energy tests run on SQLite and on the PostgreSQL server of this machine)."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from meterhub.config import parse_config
from meterhub.config.schema import SiteConfig

_spec = importlib.util.spec_from_file_location(
    "meterhub_tests_storage_conftest", Path(__file__).parent.parent / "storage" / "conftest.py"
)
assert _spec is not None and _spec.loader is not None
_storage_conftest = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = _storage_conftest
_spec.loader.exec_module(_storage_conftest)

storage_spec = _storage_conftest.storage_spec
storage_backend = _storage_conftest.storage_backend

SITE = """
site: {{name: test, timezone: {tz}, currency: EUR, co2_factor: 0.4}}
buses: [{{id: b1, kind: modbus-tcp, port: 5020}}]
devices:
  - {{id: m1, bus: b1, unit: 1, profile: eastron-sdm630}}
  - {{id: m2, bus: b1, unit: 2, profile: eastron-sdm630}}
  - {{id: m3, bus: b1, unit: 3, profile: eastron-sdm630}}
circuits:
  - {{id: main, device: m1, purpose: grid}}
  - {{id: light, device: m2, zone: office}}
  - {{id: pv, device: m3, purpose: renewable}}
energy:
{energy}
"""


def site(energy: str = "  {}", tz: str = "Europe/Berlin") -> SiteConfig:
    """A three-circuit site with the given (indented) energy section."""
    return parse_config(SITE.format(tz=tz, energy=energy))


@pytest.fixture
def make_site() -> object:
    return site


@pytest.fixture
def both_backends(tmp_path: Path) -> Iterator[tuple[Any, Any]]:
    """A fresh SQLite and a fresh PostgreSQL storage side by side (PostgreSQL skipped when unreachable)."""
    import uuid

    sc = _storage_conftest
    lite = sc.BackendSpec("sqlite", tmp_path / "sqlite")
    (tmp_path / "sqlite").mkdir()
    admin = sc._pg_admin()
    schema = f"mh_energy_{uuid.uuid4().hex[:12]}"
    admin.execute(f"CREATE SCHEMA {schema}")
    pg = sc.BackendSpec("postgres", tmp_path, dsn=f"{sc.PG_DSN} options='-c search_path={schema}'")
    try:
        yield lite.open(timezone="Europe/Berlin"), pg.open(timezone="Europe/Berlin")
    finally:
        for s in lite.opened + pg.opened:
            sc._quiet_close(s)
        admin.execute(f"DROP SCHEMA {schema} CASCADE")
        admin.close()
