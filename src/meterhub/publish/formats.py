"""Payloads of the ``eniscope-rtdata`` and ``meterhub-json`` formats (docs/publish.md has the mappings).

Both are pure functions of the aggregated intervals (:class:`~meterhub.publish.interval.CircuitInterval`):
no I/O, so the exact bytes are tested without a broker.

``eniscope-rtdata``
    seed 001's MQTT JSON: ``{"rtdata": [{uid, did, ts, V1 … AE3}, …]}``, one entry per circuit, every
    field of the seed's list present in the seed's units (W, var, VA, V, A, Hz, Wh, varh, VAh, degrees,
    Unix seconds); a field the circuit does not measure is ``null``. :data:`RTDATA_FIELDS` is the mapping
    from the catalogue.
``meterhub-json``
    one message per circuit per interval with catalogue ids, units, OBIS codes and qualities, versioned by
    its ``schema`` field; its JSON Schema is ``docs/schemas/meterhub-json-1.schema.json``.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Sequence
from datetime import UTC, datetime

from meterhub.model.formats import (
    METERHUB_JSON_QUALITY,
    METERHUB_JSON_SCHEMA,
    RTDATA_FIELDS,
    RTDATA_PHASES,
    Combine,
    RtField,
)
from meterhub.model.quantities import CATALOGUE, obis_code
from meterhub.model.topology import Phase
from meterhub.publish.interval import CircuitInterval, Value

__all__ = [
    "METERHUB_JSON_SCHEMA",
    "RTDATA_FIELDS",
    "Combine",
    "RtField",
    "meterhub_json",
    "rtdata",
    "rtdata_entry",
]

_PHASES = RTDATA_PHASES


def _round(v: float) -> float:
    # 7 significant digits: finer than any meter's class, and the payload stays short.
    return float(f"{v:.7g}")


def _field(f: RtField, values: dict[tuple[str, Phase | None], Value]) -> float | None:
    own = values.get((f.quantity, f.phase))
    if f.combine is Combine.NONE or (own is not None and not f.prefer_phases):
        return _round(own.value) if own is not None else None
    parts = [values[(f.quantity, ph)].value for ph in _PHASES if (f.quantity, ph) in values]
    if not parts:
        return _round(own.value) if own is not None else None
    total = sum(parts)
    return _round(total / len(parts) if f.combine is Combine.MEAN else total)


def rtdata_entry(ci: CircuitInterval, uid_prefix: str) -> dict[str, object]:
    """One circuit's rtdata object: ``uid`` = ``<uid_prefix>:<did as two hex bytes>`` (the seed's
    ``00:01:02:03:04:05:00:01`` form), ``did`` = the circuit's position in the site file, ``ts`` = the
    interval's end [Unix s], then every :data:`RTDATA_FIELDS` field."""
    did = ci.circuit.did
    out: dict[str, object] = {
        "uid": f"{uid_prefix}:{(did >> 8) & 0xFF:02x}:{did & 0xFF:02x}",
        "did": did,
        "ts": int(ci.end),
    }
    for f in RTDATA_FIELDS:
        out[f.name] = _field(f, ci.values)
    return out


def rtdata(intervals: Sequence[CircuitInterval], uid_prefix: str) -> bytes:
    """The ``eniscope-rtdata`` payload of one interval's circuits."""
    entries = [rtdata_entry(ci, uid_prefix) for ci in sorted(intervals, key=lambda ci: ci.circuit.did)]
    return json.dumps({"rtdata": entries}, separators=(",", ":")).encode()


_QUALITY = METERHUB_JSON_QUALITY


def _json(x: object) -> str:
    return json.dumps(x, separators=(",", ":"), ensure_ascii=False)


@functools.cache
def _series_parts(q: str, ph: Phase | None) -> tuple[str, str]:
    """The constant JSON around one series' value: ``{"quantity":…,"phase":…,"value":`` and
    ``,"unit":…,"kind":…,"obis":…,`` (the value, quality and samples go between and after)."""
    spec = CATALOGUE[q]
    head = f'{{"quantity":{_json(q)},"phase":{_json(ph.value if ph is not None else None)},"value":'
    mid = f',"unit":{_json(spec.unit)},"kind":{_json(spec.kind.value)},"obis":{_json(obis_code(spec, ph))},'
    return head, mid


#: ``"quality":"good","samples":`` and the others, by quality.
_QUALITY_PART = {q: f'"quality":{_json(name)},"samples":' for q, name in _QUALITY.items()}


def _number(v: float) -> str:
    """A value rounded to 7 significant digits as JSON writes it (``float.__repr__``; json's own words for
    the non-finite values it accepts)."""
    r = _round(v)
    return repr(r) if math.isfinite(r) else _json(r)


def meterhub_json(ci: CircuitInterval, *, site_id: str) -> bytes:
    """The ``meterhub-json`` message of one circuit and one interval (schema ``meterhub-json/1``).

    Built from cached pieces: the JSON around each series (quantity, phase, unit, kind, OBIS code) is the
    same in every interval, so only the values, qualities and sample counts are formatted each time —
    the same bytes as ``json.dumps`` of the whole message (``tests/publish/test_formats_bytes.py``), at
    a fraction of the cost (docs/publish.md, "Figures")."""
    start = ci.end - ci.interval
    head = {
        "schema": METERHUB_JSON_SCHEMA,
        "key": f"{site_id}/{ci.circuit.id}/{int(ci.end)}",
        "site": site_id,
        "circuit": ci.circuit.id,
        "name": ci.circuit.name,
        "zone": ci.circuit.zone,
        "start": datetime.fromtimestamp(start, UTC).isoformat().replace("+00:00", "Z"),
        "end": datetime.fromtimestamp(ci.end, UTC).isoformat().replace("+00:00", "Z"),
        "ts": int(ci.end),
        "interval": ci.interval,
    }
    parts = []
    for (q, ph), v in sorted(ci.values.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")):
        series_head, series_mid = _series_parts(q, ph)
        parts.append(f"{series_head}{_number(v.value)}{series_mid}{_QUALITY_PART[v.quality]}{v.samples}}}")
    return f'{_json(head)[:-1]},"values":[{",".join(parts)}]}}'.encode()
