"""``POST /api/v1/ingest``: readings uploaded by another meterhub (its ``publish:`` instance with
``transport: http``), or by anything that speaks meterhub-json.

Who may post: an **admin** API token (``Authorization: Bearer mh_…``; create one for the uploading gateway
with ``meterhub user token create <admin user> --name uploader`` or the UI). A reader token is refused with 403: a reader may look, not write
history; and a separate role for one route would be a second permission model to keep right.

The body is a JSON array of meterhub-json/1 messages (``docs/schemas/meterhub-json-1.schema.json``),
plain or gzip-compressed (``Content-Encoding: gzip``). The compressed body is bounded by the app's body
limit (:data:`~meterhub.web.limits.BODY_MAX`, 413 before it is read) and the decompressed one by
:data:`INGEST_MAX` (413 as soon as decompression passes it: a gzip bomb is never inflated in memory).

Each message's values are stored as readings of the circuit ``<site>/<circuit>`` (the message's
``site`` and ``circuit``; a site id holds no ``/``, so two sites never share a series) at the message's
``ts`` (the interval end) with the message's quality. Storage keeps one value per (series, time), and a
message whose first series already has a value at its ``ts`` counts as a duplicate, so the same upload
twice stores once. A repeated ``Idempotency-Key`` with the same body is answered from memory (the last
:data:`KEYS_KEPT` keys) without touching the database.

What was uploaded can be read back like the receiver's own circuits (any signed-in user):
``GET /api/v1/ingest/series`` lists the uploaded circuits with their series, and
``GET /api/v1/circuits/{site}/{circuit}/history`` answers exactly as ``/circuits/{circuit_id}/history``
does for a circuit of the site file (same parameters, same answer; ``circuit`` is ``<site>/<circuit>``).

Answers: 200 ``{"accepted", "duplicates", "refused": [{"index", "reason"}]}`` — a well-formed message
whose values cannot be taken (an unknown quantity, a unit other than the catalogue's, a value that is
not finite) is refused alone so that the rest of the batch is stored; 422 when the body is not a JSON
array or a message is not meterhub-json/1 (the message's index and field are named; nothing is stored);
413 too large; 415 an encoding other than gzip; 401/403 authentication; 503 storage unavailable.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import re
import zlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field

from meterhub.errors import NotFoundError
from meterhub.model.formats import METERHUB_JSON_SCHEMA
from meterhub.model.quantities import CATALOGUE, Kind, Q
from meterhub.model.readings import Quality, Reading, SeriesKey, iso_utc
from meterhub.model.topology import Phase
from meterhub.storage.base import Storage
from meterhub.storage.rollup import auto_resolution
from meterhub.web.auth import Principal, require_admin, require_live
from meterhub.web.deps import IngestTarget, Receiver, Runtime, Store, bad_param, query_time
from meterhub.web.live_api import MAX_POINTS, HistoryOut, HistoryPointOut

__all__ = ["INGEST_MAX", "INGEST_MESSAGES_MAX", "KEYS_KEPT", "IngestAnswer", "UploadedCircuit", "router"]

log = logging.getLogger("meterhub.web.ingest")

router = APIRouter(prefix="/api/v1", tags=["ingest"])

ADMIN = Annotated[Principal, Depends(require_admin)]
LIVE = Annotated[Principal, Depends(require_live)]

#: Largest decompressed body [bytes] (a batch of 500 meterhub-json messages of 20 values is ~1.5 MB).
INGEST_MAX: Final = 16 * 1024 * 1024
#: Most messages in one body [count].
INGEST_MESSAGES_MAX: Final = 10_000
#: Idempotency keys remembered (with the hash of their body and the answer) [count].
KEYS_KEPT: Final = 1000

SCHEMA: Final = METERHUB_JSON_SCHEMA
_SITE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_CIRCUIT = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_QUALITY = {"good": Quality.GOOD, "estimated": Quality.ESTIMATED, "flagged": Quality.FLAGGED}
_PHASES = {p.value: p for p in Phase}
_REQUIRED = ("schema", "key", "site", "circuit", "ts", "values")


class Refusal(BaseModel):
    index: int = Field(description="position of the message in the posted array (0-based)")
    reason: str = Field(description="what is wrong, naming the field")


class IngestAnswer(BaseModel):
    """What happened to each message of an upload."""

    accepted: int = Field(description="messages stored now")
    duplicates: int = Field(
        description="messages stored before (same site, circuit and ts), not stored again"
    )
    refused: list[Refusal] = Field(default_factory=list, description="messages not stored, and why")


@dataclass
class _IngestState:
    """Per app: one upload at a time (so two copies of a batch cannot both count as new) and the
    recent Idempotency-Keys."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    keys: OrderedDict[str, tuple[str, IngestAnswer]] = field(default_factory=OrderedDict)


def _state(request: Request) -> _IngestState:
    st: _IngestState | None = getattr(request.app.state, "ingest", None)
    if st is None:
        st = _IngestState()
        request.app.state.ingest = st
    return st


class _Invalid(Exception):
    """A message that is not meterhub-json/1: the whole body is refused (422)."""

    def __init__(self, index: int, fld: str, msg: str) -> None:
        super().__init__(msg)
        self.index, self.field, self.msg = index, fld, msg


class _Refused(Exception):
    """A well-formed message whose values cannot be stored: refused alone."""


@dataclass(frozen=True, slots=True)
class _Message:
    circuit: str  # <site>/<circuit>
    ts: float
    readings: list[Reading]


def _unprocessable(loc: list[str | int], msg: str) -> HTTPException:
    return HTTPException(422, detail=[{"loc": loc, "msg": msg, "type": "value_error"}])


def _decode(raw: bytes, encoding: str) -> bytes:
    """The body, inflated if gzip, never past :data:`INGEST_MAX`."""
    enc = encoding.strip().lower()
    if enc in ("", "identity"):
        if len(raw) > INGEST_MAX:
            raise HTTPException(413, f"the body is larger than {INGEST_MAX} bytes")
        return raw
    if enc not in ("gzip", "x-gzip"):
        raise HTTPException(415, f"Content-Encoding {encoding[:40]!r} is not accepted; send gzip or none")
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        body = inflater.decompress(raw, INGEST_MAX + 1)
    except zlib.error as exc:
        raise HTTPException(400, f"the gzip body cannot be decompressed: {exc}") from None
    if len(body) > INGEST_MAX or inflater.unconsumed_tail:
        raise HTTPException(
            413,
            f"the decompressed body is larger than {INGEST_MAX} bytes ({INGEST_MAX // 2**20} MiB), the most accepted",
        )
    if not inflater.eof:
        raise HTTPException(400, "the gzip body is truncated")
    return body


def _parse(body: bytes) -> list[Any]:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _unprocessable(["body"], f"not JSON: {exc}") from None
    if not isinstance(doc, list):
        raise _unprocessable(["body"], "the body must be a JSON array of meterhub-json messages")
    if len(doc) > INGEST_MESSAGES_MAX:
        raise HTTPException(413, f"{len(doc)} messages in one body; at most {INGEST_MESSAGES_MAX}")
    return doc


def _message(i: int, m: Any) -> _Message:
    """Check one message (schema meterhub-json/1 semantics); raise :class:`_Invalid` for a malformed
    message and :class:`_Refused` for values the catalogue does not allow."""
    if not isinstance(m, dict):
        raise _Invalid(i, "", "a message must be a JSON object")
    for name in _REQUIRED:
        if name not in m:
            raise _Invalid(i, name, f"missing field {name!r}")
    if m["schema"] != SCHEMA:
        raise _Invalid(i, "schema", f"schema {str(m['schema'])[:40]!r} is not {SCHEMA!r}")
    site, circuit, ts, values = m["site"], m["circuit"], m["ts"], m["values"]
    if not isinstance(site, str) or not _SITE.match(site):
        raise _Invalid(i, "site", "site must be 1–64 letters, digits, '_', '.', '-' (no '/')")
    if not isinstance(circuit, str) or not _CIRCUIT.match(circuit):
        raise _Invalid(i, "circuit", "circuit must match ^[a-z0-9][a-z0-9_.-]{0,63}$")
    if isinstance(ts, bool) or not isinstance(ts, int) or not 0 <= ts < 10**11:
        raise _Invalid(i, "ts", "ts must be an integer Unix time [s]")
    if m["key"] != f"{site}/{circuit}/{ts}":
        raise _Invalid(i, "key", f"key {str(m['key'])[:100]!r} is not '<site>/<circuit>/<ts>' of the message")
    if not isinstance(values, list):
        raise _Invalid(i, "values", "values must be an array")
    series = f"{site}/{circuit}"
    out: list[Reading] = []
    seen: set[tuple[str, Phase | None]] = set()
    for j, v in enumerate(values):
        where = f"values[{j}]"
        if not isinstance(v, dict):
            raise _Invalid(i, where, "a value must be a JSON object")
        for name in ("quantity", "phase", "value", "unit", "quality"):
            if name not in v:
                raise _Invalid(i, f"{where}.{name}", f"missing field {name!r}")
        q, ph, value, unit, quality = v["quantity"], v["phase"], v["value"], v["unit"], v["quality"]
        if not isinstance(q, str) or not isinstance(unit, str):
            raise _Invalid(i, f"{where}.quantity", "quantity and unit must be strings")
        if ph is not None and (not isinstance(ph, str) or ph not in _PHASES):
            raise _Invalid(i, f"{where}.phase", f"phase {str(ph)[:20]!r} is not L1, L2, L3, N, total or null")
        if not isinstance(quality, str) or quality not in _QUALITY:
            raise _Invalid(
                i, f"{where}.quality", f"quality {str(quality)[:20]!r} is not good, estimated or flagged"
            )
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _Invalid(i, f"{where}.value", "value must be a number")
        spec = CATALOGUE.get(q)
        if spec is None or spec.kind is Kind.SPECTRUM:
            raise _Refused(f"{where}.quantity: {q[:60]!r} is not a catalogue quantity this gateway stores")
        if unit != spec.unit:
            raise _Refused(f"{where}.unit: {unit[:20]!r} is not the catalogue unit {spec.unit!r} of {q}")
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if not math.isfinite(number):
            raise _Refused(f"{where}.value: not a finite number")
        phase = _PHASES[ph] if ph is not None else None
        if (q, phase) in seen:
            raise _Refused(f"{where}: {q}/{ph or '-'} appears twice in the message")
        seen.add((q, phase))
        out.append(Reading(float(ts), series, q, phase, number, _QUALITY[quality]))
    return _Message(series, float(ts), out)


@router.post(
    "/ingest",
    response_model=IngestAnswer,
    summary="Store meterhub-json messages uploaded by another gateway (admin token)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "a JSON array of meterhub-json/1 messages (docs/schemas/meterhub-json-1.schema.json); "
            "Content-Encoding: gzip accepted",
            "content": {
                "application/json": {
                    "schema": {"type": "array", "items": {"type": "object"}, "maxItems": INGEST_MESSAGES_MAX}
                }
            },
        }
    },
    responses={
        413: {"description": "body (compressed or decompressed) or message count too large"},
        415: {"description": "a Content-Encoding other than gzip"},
        422: {"description": "not a JSON array of meterhub-json/1 messages (index and field named)"},
        503: {"description": "storage unavailable: nothing was stored, send again"},
    },
)
async def ingest(request: Request, _: ADMIN, target: Receiver) -> IngestAnswer:
    """Body: a JSON array of meterhub-json/1 messages, optionally ``Content-Encoding: gzip``. Values
    are stored under the circuit ``<site>/<circuit>``; the same message twice is stored once."""
    body = _decode(await request.body(), request.headers.get("content-encoding", ""))
    docs = _parse(body)
    key = request.headers.get("idempotency-key", "")[:200]
    digest = hashlib.sha256(body).hexdigest()
    st = _state(request)
    async with st.lock:
        if key and key in st.keys and st.keys[key][0] == digest:
            before = st.keys[key][1]
            st.keys.move_to_end(key)
            return IngestAnswer(
                accepted=0, duplicates=before.accepted + before.duplicates, refused=before.refused
            )
        messages: list[tuple[int, _Message]] = []
        refused: list[Refusal] = []
        for i, m in enumerate(docs):
            try:
                messages.append((i, _message(i, m)))
            except _Refused as exc:
                refused.append(Refusal(index=i, reason=str(exc)))
            except _Invalid as exc:
                loc: list[str | int] = ["body", exc.index]
                if exc.field:
                    loc.append(exc.field)
                raise _unprocessable(loc, f"message {exc.index}: {exc.msg}") from None
        fresh, duplicates = await asyncio.to_thread(_split_duplicates, target, messages)
        readings = [r for m in fresh for r in m.readings]
        if readings:
            await target.write(readings)
        answer = IngestAnswer(accepted=len(fresh), duplicates=duplicates, refused=refused)
        if key:
            st.keys[key] = (digest, answer)
            while len(st.keys) > KEYS_KEPT:
                st.keys.popitem(last=False)
    if refused:
        log.warning(
            "ingest: refused %d of %d message(s) (first: #%d %s)",
            len(refused),
            len(docs),
            refused[0].index,
            refused[0].reason,
        )
    return answer


def _split_duplicates(
    target: IngestTarget, messages: list[tuple[int, _Message]]
) -> tuple[list[_Message], int]:
    """The messages not stored yet (by their first series at their ts, and within the body), and how
    many were (blocking: database reads)."""
    fresh: list[_Message] = []
    seen: set[tuple[str, float]] = set()
    duplicates = 0
    for _i, m in messages:
        ident = (m.circuit, m.ts)
        first = m.readings[0] if m.readings else None
        if ident in seen or (first is not None and target.stored(first.key, m.ts)):
            duplicates += 1
            continue
        seen.add(ident)
        fresh.append(m)
    return fresh, duplicates


# -- reading back what was uploaded --------------------------------------------------------------------
class UploadedSeries(BaseModel):
    quantity: str = Field(description="catalogue id")
    phase: str | None = Field(description="L1, L2, L3, N, total or null")
    unit: str


class UploadedCircuit(BaseModel):
    """One circuit another gateway uploaded: its series are stored under ``<site>/<circuit>``."""

    site: str
    circuit: str
    series_id: str = Field(description="'<site>/<circuit>': the circuit id of its values in storage")
    series: list[UploadedSeries]


def _uploaded(store: Storage) -> dict[str, list[SeriesKey]]:
    """``<site>/<circuit>`` → its stored series (only uploaded circuits have a '/' in their id)."""
    out: dict[str, list[SeriesKey]] = {}
    for key in store.series():
        if "/" in key.circuit:
            out.setdefault(key.circuit, []).append(key)
    return out


@router.get(
    "/ingest/series",
    response_model=list[UploadedCircuit],
    summary="Circuits uploaded by other gateways and their series",
)
def uploaded_series(store: Store, _: LIVE) -> list[UploadedCircuit]:
    out = []
    for series_id, keys in sorted(_uploaded(store).items()):
        site, circuit = series_id.split("/", 1)
        out.append(
            UploadedCircuit(
                site=site,
                circuit=circuit,
                series_id=series_id,
                series=[
                    UploadedSeries(
                        quantity=k.quantity,
                        phase=k.phase.value if k.phase is not None else None,
                        unit=CATALOGUE[k.quantity].unit if k.quantity in CATALOGUE else "",
                    )
                    for k in keys
                ],
            )
        )
    return out


@router.get(
    "/circuits/{site}/{circuit}/history",
    response_model=HistoryOut,
    summary="History of one series uploaded by another gateway (circuit '<site>/<circuit>')",
    responses={
        404: {"description": "nothing uploaded for that circuit"},
        422: {"description": "bad parameter"},
    },
)
def uploaded_history(
    site: str,
    circuit: str,
    rt: Runtime,
    store: Store,
    _: LIVE,
    quantity: Annotated[str, Query(description="catalogue id", max_length=64)] = Q.ACTIVE_POWER,
    phase: Annotated[
        str | None, Query(description="L1, L2, L3, N, total or none (default: total)", max_length=8)
    ] = None,
    start: Annotated[str | None, Query(description="ISO 8601 or Unix seconds (default end − 1 h)")] = None,
    end: Annotated[str | None, Query(description="ISO 8601 or Unix seconds (default now)")] = None,
    resolution: Annotated[
        Literal["auto", "raw", "1min", "15min", "1h", "1d"], Query(description="bucket size")
    ] = "auto",
) -> HistoryOut:
    """The same answer as ``/circuits/{circuit_id}/history``, for circuit ``<site>/<circuit>``."""
    series_id = f"{site}/{circuit}"
    uploaded = _uploaded(store)
    keys = uploaded.get(series_id)
    if keys is None:
        known = ", ".join(sorted(uploaded)[:20]) or "none"
        raise NotFoundError(f"nothing uploaded for circuit {series_id!r} (uploaded: {known})")
    q = CATALOGUE.get(quantity)
    if q is None:
        raise bad_param("query", "quantity", f"unknown quantity {quantity[:64]!r}")
    ph = _phase(phase, [k.phase for k in keys if k.quantity == q.id], q.phases)
    t_end = query_time(end, "end") if end is not None else rt.clock()
    t_start = query_time(start, "start") if start is not None else t_end - 3600
    if t_start >= t_end:
        raise bad_param("query", "start", "start must be before end")
    res = auto_resolution(t_start, t_end) if resolution == "auto" else resolution
    if res == "raw" and t_end - t_start > 31 * 86400:
        raise bad_param(
            "query", "resolution", "raw data is limited to 31 days per request; use 1min or coarser"
        )
    try:
        points = store.history(SeriesKey(series_id, q.id, ph), t_start, t_end, res)
    except ValueError as exc:
        raise bad_param("query", "resolution", str(exc)) from None
    if len(points) > MAX_POINTS:  # bounded answers, as for the site's own circuits
        step = -(-len(points) // MAX_POINTS)
        points = points[::step] if (len(points) - 1) % step == 0 else [*points[::step], points[-1]]
    return HistoryOut(
        circuit=series_id,
        quantity=q.id,
        phase=ph.value if ph else None,
        unit=q.unit,
        resolution=res,
        start=iso_utc(t_start),
        end=iso_utc(t_end),
        points=[HistoryPointOut.of(p) for p in points],
    )


def _phase(text: str | None, stored: list[Phase | None], allowed: Sequence[Phase]) -> Phase | None:
    """The phase asked for; by default total (or the one phase the quantity was uploaded with)."""
    if text is None or text == "":
        if Phase.TOTAL in stored or not stored:
            return Phase.TOTAL if Phase.TOTAL in allowed else (allowed[0] if allowed else None)
        return stored[0]
    if text.lower() in ("none", "null", "-"):
        return None
    try:
        return Phase("total" if text.lower() == "total" else text.upper())
    except ValueError:
        raise bad_param("query", "phase", f"{text[:8]!r} is not one of L1, L2, L3, N, total, none") from None
