"""What central accepts from a gateway: ``meterhub-json/1`` messages and the gateway's diagnostics.

Topics (docs/publish.md, "Topics"; ``<root>`` is ``meterhub``):

``<root>/<site>/circuits/<circuit>``
    one circuit's values of one interval (``docs/schemas/meterhub-json-1.schema.json``). Checked here
    field by field against that schema, and against the topic: a payload whose ``site`` or ``circuit``
    is not the one in its topic is refused — a gateway may publish only under its own site.
``<root>/<site>/ha/_gateway/state``
    the gateway's diagnostic state (``publish_<id>_backlog`` …, docs/publish.md "The gateway device"):
    central takes the backlog [messages] and ``devices_offline`` (the ids of the gateway's devices that
    stopped answering; the fleet alarm ``device_offline``) from it.
``<root>/<site>/status``
    ``online`` / ``offline`` (retained, the gateway's last will).

Parsing is pure (bytes in, typed values or :class:`PayloadError` out), so it is tested without a broker.
"""

from __future__ import annotations

import json
import math
import operator
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson

from meterhub.model.formats import METERHUB_JSON_SCHEMA
from meterhub.model.quantities import CATALOGUE

__all__ = [
    "QUALITY_CODE",
    "CircuitMessage",
    "GatewayState",
    "PayloadError",
    "Point",
    "TopicKind",
    "parse_circuit_message",
    "parse_gateway_state",
    "parse_topic",
]

#: A value's quality as stored by central (smallint): meterhub-json's words in order of badness.
QUALITY_CODE: dict[str, int] = {"good": 0, "estimated": 1, "flagged": 2}
_PHASES = {"L1", "L2", "L3", "N", "total", None}
_KINDS = {"instantaneous", "cumulative", "interval"}
_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_SITE = re.compile(r"^[^/+#\x00]{1,128}$")
_QTY = re.compile(r"^[a-z][a-z0-9_]*$")
#: Largest payload looked at [B]: a circuit with every catalogue series is about 20 kB.
MAX_PAYLOAD = 256 * 1024
#: Largest ``samples`` stored (PostgreSQL ``integer``).
_INT4_MAX = 2**31 - 1
#: An integer ``value`` below this in magnitude is a finite double.
_BIG = 2**1023
_QUALITY_OF = QUALITY_CODE
#: Bound of the caches below [entries].
_CACHE_MAX = 65536
#: (quantity, phase, unit, kind, obis) of a value already checked field by field → its series shape
#: entry (quantity, phase or "", unit): later messages with the same description skip those checks.
_KNOWN_DESCRIPTIONS: dict[tuple[Any, ...], tuple[str, str, str]] = {}
_DESCRIPTION_OF = operator.itemgetter("quantity", "phase", "unit", "kind", "obis")
_NUMBERS_OF = operator.itemgetter("value", "quality", "samples")
_SHAPES: dict[tuple[tuple[str, str, str], ...], tuple[tuple[str, str, str], ...]] = {}


class PayloadError(ValueError):
    """A message central refuses; the text says which field and why (the topic is added by the caller)."""


class TopicKind(StrEnum):
    CIRCUIT = "circuit"
    GATEWAY_STATE = "gateway_state"
    STATUS = "status"


def parse_topic(topic: str, root: str = "meterhub") -> tuple[TopicKind, str, str | None] | None:
    """``(kind, site, circuit or None)`` of a topic central reads; None for any other topic."""
    parts = topic.split("/")
    if len(parts) < 3 or parts[0] != root or not parts[1]:
        return None
    site = parts[1]
    if len(parts) == 4 and parts[2] == "circuits":
        return TopicKind.CIRCUIT, site, parts[3]
    if parts[2:] == ["ha", "_gateway", "state"]:
        return TopicKind.GATEWAY_STATE, site, None
    if parts[2:] == ["status"]:
        return TopicKind.STATUS, site, None
    return None


@dataclass(frozen=True, slots=True)
class Point:
    """One value of one series at the end of an interval."""

    quantity: str
    phase: str  # "total", "L1" …; "" for none
    unit: str
    value: float
    quality: int  # QUALITY_CODE
    samples: int


@dataclass(frozen=True, slots=True)
class CircuitMessage:
    """A checked meterhub-json message. ``ts``: interval end [Unix s]; ``interval`` [s].

    Columnar: value ``i`` is series ``shape[i]`` = (quantity, phase or "", unit) with ``values[i]`` [unit],
    ``qualities[i]`` (:data:`QUALITY_CODE`) and ``samples[i]`` [readings]. Messages of one circuit share
    one ``shape`` tuple (the same object), so the store looks their series ids up once per shape."""

    site: str
    circuit: str
    name: str
    zone: str | None
    ts: int
    interval: float
    shape: tuple[tuple[str, str, str], ...]
    values: tuple[float, ...]
    qualities: tuple[int, ...]
    samples: tuple[int, ...]

    @property
    def points(self) -> tuple[Point, ...]:
        """The values as :class:`Point` objects (for readers; the store uses the columns)."""
        return tuple(
            Point(q, ph, unit, x, code, n)
            for (q, ph, unit), x, code, n in zip(
                self.shape, self.values, self.qualities, self.samples, strict=True
            )
        )


@dataclass(frozen=True, slots=True)
class GatewayState:
    """What a gateway's diagnostic state said: its backlog, the sum over its publish instances
    [messages] (None: not reported), and its offline devices (device ids, sorted; None: the gateway does
    not report them — an older gateway — which is not the same as ``()``, none offline)."""

    site: str
    backlog: int | None
    devices_offline: tuple[str, ...] | None = None


def _need(obj: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in obj:
        raise PayloadError(f"{where}{key}: missing")
    v = obj[key]
    if not isinstance(v, kind) or (
        isinstance(v, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,))
    ):
        raise PayloadError(f"{where}{key}: {type(v).__name__} {str(v)[:40]!r} is not {_names(kind)}")
    return v


def _names(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(
        {
            str: "a string",
            int: "an integer",
            float: "a number",
            list: "a list",
            dict: "an object",
            type(None): "null",
        }.get(k, k.__name__)
        for k in kinds
    )


_MESSAGE_KEYS = {
    "schema",
    "key",
    "site",
    "circuit",
    "name",
    "zone",
    "start",
    "end",
    "ts",
    "interval",
    "values",
}
_VALUE_KEYS = {"quantity", "phase", "value", "unit", "kind", "obis", "quality", "samples"}


def parse_circuit_message(payload: bytes, topic_site: str, topic_circuit: str) -> CircuitMessage:
    """Check one ``meterhub-json/1`` payload received on ``<root>/<topic_site>/circuits/<topic_circuit>``.

    Raises :class:`PayloadError` for anything the schema does not allow, for a quantity not in the
    catalogue, for a site or circuit that disagrees with the topic, and for numbers PostgreSQL cannot
    hold (``samples`` above 2³¹ − 1)."""
    if len(payload) > MAX_PAYLOAD:
        raise PayloadError(f"payload of {len(payload)} bytes is larger than {MAX_PAYLOAD}")
    try:
        msg = orjson.loads(payload)
    except orjson.JSONDecodeError:
        # orjson is strict JSON; the standard decoder also reads NaN/Infinity and integers beyond 64 bits
        # (refused below, field by field) and gives the error messages central has always given
        try:
            msg = json.loads(payload)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise PayloadError(f"not JSON: {exc}") from None
    if type(msg) is not dict:
        raise PayloadError("not a JSON object")
    if msg.keys() != _MESSAGE_KEYS:  # all required and no other (schema: additionalProperties false)
        extra = set(msg) - _MESSAGE_KEYS
        if extra:
            raise PayloadError(f"unknown field(s) {', '.join(sorted(extra))}")
    schema = _need(msg, "schema", str, "")
    if schema != METERHUB_JSON_SCHEMA:
        raise PayloadError(f"schema {schema[:40]!r}: central reads {METERHUB_JSON_SCHEMA}")
    site = _need(msg, "site", str, "")
    circuit = _need(msg, "circuit", str, "")
    if site != topic_site:
        raise PayloadError(f"site {site[:64]!r} disagrees with the topic's site {topic_site!r}")
    if circuit != topic_circuit:
        raise PayloadError(f"circuit {circuit[:64]!r} disagrees with the topic's circuit {topic_circuit!r}")
    if not _SITE.match(site):
        raise PayloadError(f"site {site[:64]!r}: 1–128 characters without / + #")
    if not _ID.match(circuit):
        raise PayloadError(f"circuit {circuit[:64]!r}: [a-z0-9][a-z0-9_.-]{{0,63}}")
    ts = _need(msg, "ts", int, "")
    interval = _need(msg, "interval", (int, float), "")
    if ts < 0 or not _finite(interval) or interval < 1:
        raise PayloadError(f"ts {ts} / interval {interval}: ts ≥ 0 and interval ≥ 1 s")
    key = _need(msg, "key", str, "")
    if key != f"{site}/{circuit}/{ts}":
        raise PayloadError(f"key {key[:80]!r} is not {site}/{circuit}/{ts}")
    name = _need(msg, "name", str, "")
    zone = _need(msg, "zone", (str, type(None)), "")
    if "\x00" in name or (zone is not None and "\x00" in zone):
        raise PayloadError("name/zone: a NUL character (PostgreSQL text cannot hold it)")
    _need(msg, "start", str, "")
    _need(msg, "end", str, "")
    values = _need(msg, "values", list, "")
    shape: list[tuple[str, str, str]] = []
    numbers: list[float] = []
    qualities: list[int] = []
    samples: list[int] = []
    known = _KNOWN_DESCRIPTIONS
    description_of = _DESCRIPTION_OF
    numbers_of = _NUMBERS_OF
    for i, v in enumerate(values):
        # fast path: a value whose description (quantity, phase, unit, kind, obis) was checked before and
        # whose number, quality and samples are plainly valid; anything else is checked field by field
        # by _check_value, which raises the first error in the schema's order
        if type(v) is dict and v.keys() == _VALUE_KEYS:
            try:
                desc = known.get(description_of(v))
            except TypeError:  # a list or an object where a string belongs
                desc = None
            x, quality, n = numbers_of(v)
            code = _QUALITY_OF.get(quality) if type(quality) is str else None
            if (
                desc is not None
                and code is not None
                and ((type(x) is float and x - x == 0.0) or (type(x) is int and -_BIG < x < _BIG))
                and type(n) is int
                and 1 <= n <= _INT4_MAX
            ):
                shape.append(desc)
                numbers.append(float(x))
                qualities.append(code)
                samples.append(n)
                continue
        desc, x, code, n = _check_value(v, i)
        shape.append(desc)
        numbers.append(x)
        qualities.append(code)
        samples.append(n)
    return CircuitMessage(
        site,
        circuit,
        name[:200],
        zone,
        ts,
        float(interval),
        _intern_shape(tuple(shape)),
        tuple(numbers),
        tuple(qualities),
        tuple(samples),
    )


def _finite(x: float) -> bool:
    try:
        return math.isfinite(x)
    except OverflowError:  # an integer beyond a double
        return False


def _check_value(v: Any, i: int) -> tuple[tuple[str, str, str], float, int, int]:
    """One entry of ``values``, field by field: ``((quantity, phase or "", unit), value, quality code,
    samples)``, or :class:`PayloadError` naming the first field at fault."""
    where = f"values[{i}]."
    if not isinstance(v, dict):
        raise PayloadError(f"values[{i}]: not an object")
    extra = set(v) - _VALUE_KEYS
    if extra:
        raise PayloadError(f"{where}: unknown field(s) {', '.join(sorted(extra))}")
    q = _need(v, "quantity", str, where)
    if not _QTY.match(q) or q not in CATALOGUE:
        raise PayloadError(f"{where}quantity {q[:40]!r} is not in meterhub's catalogue")
    ph = _need(v, "phase", (str, type(None)), where)
    if ph not in _PHASES:
        raise PayloadError(f"{where}phase {str(ph)[:10]!r}: one of L1 L2 L3 N total null")
    value = _need(v, "value", (int, float), where)
    if not _finite(value):
        raise PayloadError(f"{where}value: not a finite number")
    unit = _need(v, "unit", str, where)
    if "\x00" in unit or len(unit) > 32:
        raise PayloadError(f"{where}unit: at most 32 characters, no NUL")
    kind = _need(v, "kind", str, where)
    if kind not in _KINDS:
        raise PayloadError(f"{where}kind: one of {', '.join(sorted(_KINDS))}")
    obis = _need(v, "obis", (str, type(None)), where)
    quality = _need(v, "quality", str, where)
    if quality not in QUALITY_CODE:
        raise PayloadError(f"{where}quality {quality[:20]!r}: one of good estimated flagged")
    samples = _need(v, "samples", int, where)
    if samples < 1:
        raise PayloadError(f"{where}samples: at least 1")
    if samples > _INT4_MAX:
        raise PayloadError(f"{where}samples: {samples} is more than {_INT4_MAX}")
    desc = (q, ph or "", unit)
    if len(_KNOWN_DESCRIPTIONS) >= _CACHE_MAX:  # a gateway inventing units cannot grow it without bound
        _KNOWN_DESCRIPTIONS.clear()
    _KNOWN_DESCRIPTIONS[(q, ph, unit, kind, obis)] = desc
    return desc, float(value), QUALITY_CODE[quality], samples


def _intern_shape(shape: tuple[tuple[str, str, str], ...]) -> tuple[tuple[str, str, str], ...]:
    """The one tuple of this shape: messages of a circuit share it, so a series-id lookup per shape
    compares by identity."""
    known = _SHAPES.get(shape)
    if known is not None:
        return known
    if len(_SHAPES) >= _CACHE_MAX:
        _SHAPES.clear()
    _SHAPES[shape] = shape
    return shape


#: Device ids a gateway may list as offline at most (a larger list is refused) [count].
MAX_DEVICES_OFFLINE = 1000


def parse_gateway_state(payload: bytes, site: str) -> GatewayState | None:
    """The backlog in a gateway's diagnostic state (sum of every ``publish_<id>_backlog``) and its
    ``devices_offline`` list; None when the message has neither."""
    try:
        data = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise PayloadError("gateway state: not JSON") from None
    if not isinstance(data, dict):
        raise PayloadError("gateway state: not a JSON object")
    backlogs = [
        v
        for k, v in data.items()
        if isinstance(k, str)
        and k.startswith("publish_")
        and k.endswith("_backlog")
        and isinstance(v, int | float)
        and not isinstance(v, bool)
        and math.isfinite(v)
    ]
    devices: tuple[str, ...] | None = None
    if "devices_offline" in data:
        raw = data["devices_offline"]
        if not isinstance(raw, list) or len(raw) > MAX_DEVICES_OFFLINE:
            raise PayloadError(
                f"gateway state: devices_offline is a list of at most {MAX_DEVICES_OFFLINE} device ids"
            )
        for i, d in enumerate(raw):
            if not isinstance(d, str) or not _ID.match(d):
                raise PayloadError(
                    f"gateway state: devices_offline[{i}] {str(d)[:40]!r} is not a device id "
                    "([a-z0-9][a-z0-9_.-]{0,63})"
                )
        devices = tuple(sorted(set(raw)))
    if not backlogs and devices is None:
        return None
    return GatewayState(site, int(sum(backlogs)) if backlogs else None, devices)
