"""Payload → readings for MQTT ingest: ``eniscope-rtdata``, ``meterhub-json`` and a declared JSON mapping.

Pure functions of (payload, receive time): no I/O, so the tests check exact values without a broker.
A decoder returns the readings it could make and the problems it met (:class:`Problem`: a short
``reason`` the source logs once per topic, and a message naming the field); it never raises on a
payload. Values are in catalogue units (a mapping's unit is converted), plausibility is left to the
energy stage.

Which circuit a value belongs to (docs/publish.md "MQTT ingest"):

* ``eniscope-rtdata``: the entry whose ``did`` is the circuit's first channel; entries of other dids are
  skipped (one Eniscope hub publishes all its channels in one message) and reported as ``skipped``.
* ``meterhub-json``: the circuit whose id is the message's ``circuit``.
* ``json``: the mapping entry's ``circuit``, else the device's only circuit.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from meterhub.config.mqtt import MappingEntry, MqttDeviceSpec, MqttFormat, parse_path
from meterhub.config.schema import Circuit
from meterhub.model.formats import METERHUB_JSON_QUALITY, METERHUB_JSON_SCHEMA, RTDATA_FIELDS
from meterhub.model.quantities import CATALOGUE
from meterhub.model.readings import Quality, Reading
from meterhub.model.topology import Phase
from meterhub.model.units import unit_factor

__all__ = ["Decoded", "PayloadDecoder", "Problem", "lookup"]

_QUALITY_OF = {name: q for q, name in METERHUB_JSON_QUALITY.items()}
# rtdata's system current "I" is the SUM of the phase currents (seed 001's example), the catalogue's total
# current their MEAN: "I" is not taken, the phases are.
_RT_FIELDS = tuple(f for f in RTDATA_FIELDS if not f.prefer_phases)
# A Unix time above this is taken as milliseconds [s] (year 5138 in seconds).
_MS_THRESHOLD = 1e11


@dataclass(frozen=True, slots=True)
class Problem:
    """Something wrong with a payload: ``reason`` is short and stable (the log-once key), ``message``
    says which field and why."""

    reason: str
    message: str


@dataclass
class Decoded:
    """What one payload gave: readings (catalogue units) and problems; ``skipped`` counts rtdata
    entries and meterhub-json messages of circuits that are not configured on the device."""

    readings: list[Reading] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def lookup(doc: Any, path: tuple[str | int, ...]) -> Any:
    """The value at ``path`` (:func:`meterhub.config.mqtt.parse_path`) in ``doc``; KeyError if absent."""
    node = doc
    for part in path:
        if isinstance(part, int):
            if not isinstance(node, list) or part >= len(node):
                raise KeyError(part)
            node = node[part]
        else:
            if not isinstance(node, dict) or part not in node:
                raise KeyError(part)
            node = node[part]
    return node


def _number(value: Any) -> float | None:
    """A finite JSON number as float, else None (booleans and numeric strings are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    v = float(value)
    return v if math.isfinite(v) else None


def _unix_seconds(value: Any) -> float | None:
    v = _number(value)
    if v is None or v <= 0:
        return None
    return v / 1000 if v > _MS_THRESHOLD else v


class PayloadDecoder:
    """Decodes the payloads of one MQTT device (its ``mqtt:`` block) for its circuits."""

    def __init__(self, device_id: str, spec: MqttDeviceSpec, circuits: Sequence[Circuit]) -> None:
        self.device_id = device_id
        self.spec = spec
        self._by_did = {c.channels[0]: c.id for c in circuits}
        self._ids = {c.id for c in circuits}
        only = circuits[0].id if len(circuits) == 1 else None
        self._mapping: list[tuple[MappingEntry, tuple[str | int, ...], str | None]] = [
            (m, parse_path(m.path), m.circuit or only) for m in spec.mapping
        ]
        self._ts_path = parse_path(spec.timestamp) if spec.timestamp else None

    def decode(self, payload: bytes, received: float) -> Decoded:
        """The readings of one payload received at ``received`` [Unix s]."""
        out = Decoded()
        try:
            doc = json.loads(payload)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            out.problems.append(Problem("not JSON", f"not JSON ({exc})"))
            return out
        if self.spec.format is MqttFormat.ENISCOPE_RTDATA:
            self._rtdata(doc, received, out)
        elif self.spec.format is MqttFormat.METERHUB_JSON:
            self._meterhub_json(doc, received, out)
        else:
            self._json(doc, received, out)
        return out

    # -- eniscope-rtdata ------------------------------------------------------------------------
    def _rtdata(self, doc: Any, received: float, out: Decoded) -> None:
        entries = doc.get("rtdata") if isinstance(doc, dict) else None
        if not isinstance(entries, list):
            out.problems.append(Problem("no rtdata list", "no 'rtdata' list (expected {\"rtdata\": [{…}]})"))
            return
        for n, entry in enumerate(entries):
            if not isinstance(entry, dict):
                out.problems.append(Problem("entry not an object", f"rtdata[{n}] is not an object"))
                continue
            did = entry.get("did")
            if isinstance(did, bool) or not isinstance(did, int):
                out.problems.append(Problem("no did", f"rtdata[{n}].did is missing or not an integer"))
                continue
            circuit = self._by_did.get(did)
            if circuit is None:
                out.skipped.append(f"did {did}")
                continue
            ts = received
            if entry.get("ts") is not None:
                t = _unix_seconds(entry["ts"])
                if t is None:
                    out.problems.append(
                        Problem("bad ts", f"rtdata[{n}].ts {entry['ts']!r} is not Unix seconds")
                    )
                    continue
                ts = t
            for f in _RT_FIELDS:
                raw = entry.get(f.name)
                if raw is None:
                    continue  # the seed's null: not measured
                value = _number(raw)
                if value is None:
                    out.problems.append(
                        Problem(
                            f"{f.name} not a number", f"rtdata[{n}].{f.name} = {raw!r:.40} is not a number"
                        )
                    )
                    continue
                out.readings.append(Reading(ts, circuit, f.quantity, f.phase, value))

    # -- meterhub-json --------------------------------------------------------------------------
    def _meterhub_json(self, doc: Any, received: float, out: Decoded) -> None:
        if not isinstance(doc, dict):
            out.problems.append(Problem("not an object", "the message is not a JSON object"))
            return
        if doc.get("schema") != METERHUB_JSON_SCHEMA:
            out.problems.append(
                Problem("wrong schema", f"schema {doc.get('schema')!r:.40} is not {METERHUB_JSON_SCHEMA!r}")
            )
            return
        circuit = doc.get("circuit")
        if not isinstance(circuit, str):
            out.problems.append(Problem("no circuit", "'circuit' is missing or not text"))
            return
        if circuit not in self._ids:
            out.skipped.append(f"circuit {circuit[:64]}")
            return
        ts = _unix_seconds(doc.get("ts"))
        if ts is None:
            out.problems.append(Problem("bad ts", f"ts {doc.get('ts')!r:.40} is not Unix seconds"))
            return
        values = doc.get("values")
        if not isinstance(values, list):
            out.problems.append(Problem("no values", "'values' is missing or not a list"))
            return
        for n, v in enumerate(values):
            reading = self._mj_value(n, v, circuit, ts, out)
            if reading is not None:
                out.readings.append(reading)

    @staticmethod
    def _mj_value(n: int, v: Any, circuit: str, ts: float, out: Decoded) -> Reading | None:
        if not isinstance(v, dict):
            out.problems.append(Problem("value not an object", f"values[{n}] is not an object"))
            return None
        quantity = v.get("quantity")
        spec = CATALOGUE.get(quantity) if isinstance(quantity, str) else None
        if spec is None:
            out.problems.append(
                Problem("unknown quantity", f"values[{n}].quantity {quantity!r:.40} is unknown")
            )
            return None
        try:
            phase = None if v.get("phase") is None else Phase(v["phase"])
        except ValueError:
            out.problems.append(
                Problem("unknown phase", f"values[{n}].phase {v.get('phase')!r:.20} is unknown")
            )
            return None
        unit = v.get("unit")
        factor = unit_factor(spec.unit, unit) if isinstance(unit, str) else None
        if factor is None:
            out.problems.append(
                Problem("unknown unit", f"values[{n}].unit {unit!r:.20} is not a unit of {spec.id}")
            )
            return None
        value = _number(v.get("value"))
        if value is None:
            if v.get("value") is not None:
                out.problems.append(Problem("value not a number", f"values[{n}].value is not a number"))
            return None
        quality = _QUALITY_OF.get(v.get("quality", "good"))
        if quality is None:
            out.problems.append(Problem("unknown quality", f"values[{n}].quality {v.get('quality')!r:.20}"))
            quality = Quality.INVALID
        return Reading(ts, circuit, spec.id, phase, value * factor, quality)

    # -- json with a declared mapping ----------------------------------------------------------
    def _json(self, doc: Any, received: float, out: Decoded) -> None:
        ts = received
        if self._ts_path is not None:
            try:
                raw = lookup(doc, self._ts_path)
            except KeyError:
                out.problems.append(
                    Problem(
                        f"missing {self.spec.timestamp}",
                        f"no {self.spec.timestamp} (timestamp) in the payload",
                    )
                )
                return
            t = _unix_seconds(raw)
            if t is None:
                out.problems.append(
                    Problem(
                        f"bad {self.spec.timestamp}", f"{self.spec.timestamp} {raw!r:.40} is not Unix time"
                    )
                )
                return
            ts = t
        for m, path, circuit in self._mapping:
            if circuit is None:  # refused by check-config; kept safe for a programmatic config
                continue
            try:
                raw = lookup(doc, path)
            except KeyError:
                out.problems.append(Problem(f"missing {m.path}", f"no {m.path} in the payload"))
                continue
            value = _number(raw)
            if value is None:
                out.problems.append(
                    Problem(f"{m.path} not a number", f"{m.path} = {raw!r:.40} is not a number")
                )
                continue
            out.readings.append(Reading(ts, circuit, m.quantity, m.phase, value * m.factor))
