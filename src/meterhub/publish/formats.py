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

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from meterhub.model.quantities import CATALOGUE, Q, obis_code
from meterhub.model.readings import Quality
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

#: The ``schema`` field of every meterhub-json message (bumped on an incompatible change).
METERHUB_JSON_SCHEMA = "meterhub-json/1"

_PHASES = (Phase.L1, Phase.L2, Phase.L3)


class Combine(StrEnum):
    """How a system field is made when the circuit reports no total of its own."""

    NONE = "none"  # only the circuit's own value
    MEAN = "mean"  # mean of the phases (voltages)
    SUM = "sum"  # sum of the phases (powers, energies, and Eniscope's system current)


@dataclass(frozen=True, slots=True)
class RtField:
    """One rtdata field: its catalogue quantity and phase; for a system field how to combine phases."""

    name: str
    quantity: str
    phase: Phase | None
    combine: Combine = Combine.NONE
    prefer_phases: bool = False  # use the combination of the phases even when a total exists


def _three(prefix: str, quantity: str) -> list[RtField]:
    return [RtField(f"{prefix}{n}", quantity, ph) for n, ph in zip((1, 2, 3), _PHASES, strict=True)]


#: The seed 001 rtdata fields in the seed's order of listing (uid, did, ts are added per circuit).
RTDATA_FIELDS: tuple[RtField, ...] = (
    *_three("V", Q.VOLTAGE),
    RtField("V", Q.VOLTAGE, Phase.TOTAL, Combine.MEAN),
    *_three("U", Q.VOLTAGE_LINE),
    RtField("U", Q.VOLTAGE_LINE, Phase.TOTAL, Combine.MEAN),
    *_three("I", Q.CURRENT),
    # Seed 001's example has I = I1 + I2 + I3 (7.2894 = 2.436 + 2.423 + 2.4304), where the catalogue's
    # total current is the mean of the phases: the phases are summed whenever they are there.
    RtField("I", Q.CURRENT, Phase.TOTAL, Combine.SUM, prefer_phases=True),
    RtField("In", Q.CURRENT, Phase.N),
    *_three("P", Q.ACTIVE_POWER),
    RtField("P", Q.ACTIVE_POWER, Phase.TOTAL, Combine.SUM),
    *_three("Q", Q.REACTIVE_POWER),
    RtField("Q", Q.REACTIVE_POWER, Phase.TOTAL, Combine.SUM),
    *_three("S", Q.APPARENT_POWER),
    RtField("S", Q.APPARENT_POWER, Phase.TOTAL, Combine.SUM),
    *_three("PF", Q.POWER_FACTOR),
    RtField("PF", Q.POWER_FACTOR, Phase.TOTAL),
    *_three("A", Q.ANGLE_VOLTAGE_CURRENT),
    RtField("F", Q.FREQUENCY, Phase.TOTAL),
    RtField("E", Q.ENERGY_ACTIVE_IMPORT, Phase.TOTAL, Combine.SUM),
    *_three("E", Q.ENERGY_ACTIVE_IMPORT),
    RtField("Ex", Q.ENERGY_ACTIVE_EXPORT, Phase.TOTAL, Combine.SUM),
    *_three("Ex", Q.ENERGY_ACTIVE_EXPORT),
    RtField("RE", Q.ENERGY_REACTIVE_IMPORT, Phase.TOTAL, Combine.SUM),
    *_three("RE", Q.ENERGY_REACTIVE_IMPORT),
    RtField("REx", Q.ENERGY_REACTIVE_EXPORT, Phase.TOTAL, Combine.SUM),
    *_three("REx", Q.ENERGY_REACTIVE_EXPORT),
    RtField("AE", Q.ENERGY_APPARENT, Phase.TOTAL, Combine.SUM),
    *_three("AE", Q.ENERGY_APPARENT),
)


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


_QUALITY = {q: q.name.lower() for q in Quality}


def meterhub_json(ci: CircuitInterval, *, site_id: str) -> bytes:
    """The ``meterhub-json`` message of one circuit and one interval (schema ``meterhub-json/1``)."""
    values = []
    for (q, ph), v in sorted(ci.values.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")):
        spec = CATALOGUE[q]
        values.append(
            {
                "quantity": q,
                "phase": ph.value if ph is not None else None,
                "value": _round(v.value),
                "unit": spec.unit,
                "kind": spec.kind.value,
                "obis": obis_code(spec, ph),
                "quality": _QUALITY[v.quality],
                "samples": v.samples,
            }
        )
    start = ci.end - ci.interval
    msg = {
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
        "values": values,
    }
    return json.dumps(msg, separators=(",", ":"), ensure_ascii=False).encode()
