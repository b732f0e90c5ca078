"""meterhub-json is built from cached pieces (publish/formats.py); its bytes are exactly those of
``json.dumps`` of the whole message, the way the format is specified (docs/publish.md)."""

from __future__ import annotations

import json
import math
import random
from datetime import UTC, datetime

import pytest

from meterhub.model.formats import METERHUB_JSON_QUALITY, METERHUB_JSON_SCHEMA
from meterhub.model.quantities import CATALOGUE, Kind, obis_code
from meterhub.model.readings import Quality
from meterhub.model.topology import Phase
from meterhub.publish import formats
from meterhub.publish.interval import CircuitInfo, CircuitInterval, Value


def reference(ci: CircuitInterval, site_id: str) -> bytes:
    """The message as one json.dumps of a dict (the implementation before the cached pieces)."""
    values = []
    for (q, ph), v in sorted(ci.values.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")):
        spec = CATALOGUE[q]
        values.append(
            {
                "quantity": q,
                "phase": ph.value if ph is not None else None,
                "value": float(f"{v.value:.7g}"),
                "unit": spec.unit,
                "kind": spec.kind.value,
                "obis": obis_code(spec, ph),
                "quality": METERHUB_JSON_QUALITY[v.quality],
                "samples": v.samples,
            }
        )
    msg = {
        "schema": METERHUB_JSON_SCHEMA,
        "key": f"{site_id}/{ci.circuit.id}/{int(ci.end)}",
        "site": site_id,
        "circuit": ci.circuit.id,
        "name": ci.circuit.name,
        "zone": ci.circuit.zone,
        "start": datetime.fromtimestamp(ci.end - ci.interval, UTC).isoformat().replace("+00:00", "Z"),
        "end": datetime.fromtimestamp(ci.end, UTC).isoformat().replace("+00:00", "Z"),
        "ts": int(ci.end),
        "interval": ci.interval,
        "values": values,
    }
    return json.dumps(msg, separators=(",", ":"), ensure_ascii=False).encode()


QUANTITIES = [q for q, spec in CATALOGUE.items() if spec.kind is not Kind.SPECTRUM]
PHASES: list[Phase | None] = [None, *Phase]
SPECIAL = [0.0, -0.0, 1e-12, -3.3e-7, 123456789.0, 1e20, 0.1 + 0.2, 230.00004999, math.inf, math.nan]


@pytest.mark.parametrize("seed", range(20))
def test_meterhub_json_bytes_equal_json_dumps_of_the_whole_message(seed: int) -> None:
    rnd = random.Random(seed)
    values = {}
    for _ in range(rnd.randint(0, 60)):
        v = rnd.choice(SPECIAL) if rnd.random() < 0.2 else rnd.uniform(-1e6, 1e6)
        values[(rnd.choice(QUANTITIES), rnd.choice(PHASES))] = Value(
            v, rnd.choice(list(Quality)), rnd.randint(0, 3600)
        )
    name = rnd.choice(["Main incomer", 'Küche "Süd" \\ Ofen', "冷却"])
    info = CircuitInfo("c-1", name, rnd.choice([None, "plant", "büro"]), "3P4W", 1)
    ci = CircuitInterval(info, 1_800_000_000.0 + 60 * seed, rnd.choice([1, 60.0, 0.5]), values)
    assert formats.meterhub_json(ci, site_id="site-ü") == reference(ci, "site-ü")
