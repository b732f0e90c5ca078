"""The flat Modbus map: every catalogue quantity of every circuit at a fixed address (docs/modbus-map.md).

For a BMS or SCADA that wants more than the SunSpec meter models carry (demand, THD, cost, …) or reads
plain float registers. One unit id (``modbus_server.flat_map_unit``, 247 by default) serves it, read
with function code 3 or 4:

* registers 0-19, the header: 0 map version (1), 1 number of circuits in the map, 2 registers per
  circuit block (1000), 3 offset of the first value in a block (20).
* circuit *n* (1-based, in the order of the site file's ``circuits:``, at most :data:`MAX_CIRCUITS`)
  has the block starting at ``1000 × n``: +0 its SunSpec unit id (0 when not served as SunSpec), +1 … +16
  its id (ASCII, 32 characters, NUL padded), then from +20 the values in the order of
  :data:`FLAT_QUANTITIES`, each phase the quantity has in the catalogue (L1, L2, L3, N, total in that
  order): float32 (2 registers) for instantaneous and interval quantities, float64 (4 registers) for
  cumulative registers (float32 would lose whole Wh above 16.7 MWh). Big-endian: high word first
  (Modbus Application Protocol V1.1b3 §4.2 for each register; word order as SunSpec's).

A value that is missing, invalid (the energy stage refused it) or stale is NaN. The order of
:data:`FLAT_QUANTITIES` is frozen: a quantity added to the catalogue is appended at its end (a test
checks the two agree), so published addresses never move. ``python -m meterhub.publish.modbus_map``
prints docs/modbus-map.md.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from meterhub.model import quantities
from meterhub.model.quantities import Kind, Q
from meterhub.model.topology import Phase

__all__ = [
    "BLOCK",
    "FIRST_VALUE",
    "FLAT_QUANTITIES",
    "MAP_VERSION",
    "MAX_CIRCUITS",
    "FlatEntry",
    "flat_entries",
    "render_block",
    "render_header",
    "render_markdown",
]

MAP_VERSION = 1
#: Registers per circuit block.
BLOCK = 1000
#: Offset of the first value in a block.
FIRST_VALUE = 20
#: Circuits the map holds: blocks 1…65 end at register 65 999 > 65 535, so 64.
MAX_CIRCUITS = 64

#: Every non-spectrum catalogue quantity, in the frozen order of the map. Append only.
FLAT_QUANTITIES: tuple[str, ...] = (
    Q.VOLTAGE,
    Q.VOLTAGE_LINE,
    Q.VOLTAGE_MAX,
    Q.VOLTAGE_MIN,
    Q.VOLTAGE_LINE_MAX,
    Q.VOLTAGE_LINE_MIN,
    Q.VOLTAGE_ZERO_SEQUENCE,
    Q.VOLTAGE_UNBALANCE_NEGATIVE,
    Q.VOLTAGE_UNBALANCE_ZERO,
    Q.CURRENT,
    Q.CURRENT_NEUTRAL_CALCULATED,
    Q.CURRENT_MAX,
    Q.CURRENT_UNBALANCE_NEGATIVE,
    Q.CURRENT_UNBALANCE_ZERO,
    Q.ACTIVE_POWER,
    Q.ACTIVE_POWER_IMPORT,
    Q.ACTIVE_POWER_EXPORT,
    Q.REACTIVE_POWER,
    Q.NONACTIVE_POWER,
    Q.APPARENT_POWER,
    Q.APPARENT_POWER_ARITHMETIC,
    Q.APPARENT_POWER_VECTOR,
    Q.POWER_FACTOR,
    Q.DISPLACEMENT_POWER_FACTOR,
    Q.POWER_PREDICTED,
    Q.FREQUENCY,
    Q.ANGLE_VOLTAGE,
    Q.ANGLE_CURRENT,
    Q.ANGLE_VOLTAGE_CURRENT,
    Q.THD_VOLTAGE,
    Q.THD_CURRENT,
    Q.TOHD_VOLTAGE,
    Q.TEHD_VOLTAGE,
    Q.TOHD_CURRENT,
    Q.TEHD_CURRENT,
    Q.CREST_FACTOR_VOLTAGE,
    Q.CREST_FACTOR_CURRENT,
    Q.K_FACTOR,
    Q.FACTOR_K,
    Q.ENERGY_ACTIVE_IMPORT,
    Q.ENERGY_ACTIVE_EXPORT,
    Q.ENERGY_ACTIVE_NET,
    Q.ENERGY_ACTIVE_ABSOLUTE,
    Q.ENERGY_REACTIVE_IMPORT,
    Q.ENERGY_REACTIVE_EXPORT,
    Q.ENERGY_REACTIVE_NET,
    Q.ENERGY_REACTIVE_ABSOLUTE,
    Q.ENERGY_REACTIVE_Q1,
    Q.ENERGY_REACTIVE_Q2,
    Q.ENERGY_REACTIVE_Q3,
    Q.ENERGY_REACTIVE_Q4,
    Q.ENERGY_APPARENT,
    Q.ENERGY_APPARENT_EXPORT,
    Q.DEMAND_ACTIVE_IMPORT,
    Q.DEMAND_ACTIVE_EXPORT,
    Q.DEMAND_REACTIVE_IMPORT,
    Q.DEMAND_REACTIVE_EXPORT,
    Q.DEMAND_APPARENT,
    Q.DEMAND_CURRENT,
    Q.MAX_DEMAND_ACTIVE_IMPORT,
    Q.MAX_DEMAND_ACTIVE_EXPORT,
    Q.MAX_DEMAND_REACTIVE_IMPORT,
    Q.MAX_DEMAND_REACTIVE_EXPORT,
    Q.MAX_DEMAND_APPARENT,
    Q.MAX_DEMAND_CURRENT,
    Q.DEMAND_ACTIVE_IMPORT_PREDICTED,
    Q.DEMAND_REACTIVE_IMPORT_PREDICTED,
    Q.DEMAND_APPARENT_PREDICTED,
    Q.COST,
    Q.CO2,
    Q.PULSE_COUNT,
    Q.VOLUME_GAS,
    Q.VOLUME_WATER,
    Q.VOLUME_OIL,
    Q.VOLUME_FLOW,
    Q.OPERATING_HOURS,
    Q.TEMPERATURE,
    Q.DIGITAL_INPUT,
    Q.RELAY_OUTPUT,
    Q.ANALOG_INPUT,
    Q.ANALOG_OUTPUT,
)

#: Phase order within a quantity.
_PHASE_ORDER = (Phase.L1, Phase.L2, Phase.L3, Phase.N, Phase.TOTAL)


@dataclass(frozen=True, slots=True)
class FlatEntry:
    """One value of a circuit block: its offset from the block start, size (2: float32, 4: float64),
    quantity and phase."""

    offset: int
    size: int
    quantity: str
    phase: Phase


def _build() -> tuple[FlatEntry, ...]:
    out: list[FlatEntry] = []
    at = FIRST_VALUE
    for qid in FLAT_QUANTITIES:
        q = quantities.get(qid)
        size = 4 if q.kind is Kind.CUMULATIVE else 2
        for ph in _PHASE_ORDER:
            if ph in q.phases:
                out.append(FlatEntry(at, size, qid, ph))
                at += size
    if at > BLOCK:  # pragma: no cover - caught by the tests when the catalogue grows too far
        raise RuntimeError(f"the flat map's values need {at} registers, more than its block of {BLOCK}")
    return tuple(out)


_ENTRIES = _build()
#: Registers of a block actually used (header of the block and values).
BLOCK_USED = _ENTRIES[-1].offset + _ENTRIES[-1].size


def flat_entries() -> tuple[FlatEntry, ...]:
    """Every value of a circuit block, in address order."""
    return _ENTRIES


def render_header(circuits: int) -> list[int]:
    """Registers 0-19."""
    return [MAP_VERSION, circuits, BLOCK, FIRST_VALUE] + [0] * (FIRST_VALUE - 4)


def _words(fmt: str, value: float) -> list[int]:
    n = struct.calcsize(fmt) // 2
    return list(struct.unpack(f">{n}H", struct.pack(fmt, value)))


_NAN32 = _words(">f", math.nan)
_NAN64 = _words(">d", math.nan)


def render_block(
    circuit_id: str, sunspec_unit: int, lookup: Callable[[str, Phase], float | None]
) -> list[int]:
    """The registers of one circuit block (:data:`BLOCK_USED` of them) with the values of ``lookup``."""
    raw = circuit_id.encode("ascii", "replace")[:32].ljust(32, b"\0")
    regs = [sunspec_unit, *struct.unpack(">16H", raw)] + [0] * (FIRST_VALUE - 17)
    for e in _ENTRIES:
        v = lookup(e.quantity, e.phase)
        if e.size == 2:
            if v is None or not math.isfinite(v) or abs(v) > 3.4e38:
                regs += _NAN32
            else:
                regs += _words(">f", v)
        else:
            regs += _NAN64 if v is None or not math.isfinite(v) else _words(">d", v)
    return regs


def render_markdown() -> str:
    """docs/modbus-map.md: the layout of a circuit block, generated from the catalogue."""
    lines = [
        "# Modbus flat map",
        "",
        "<!-- generated by `python -m meterhub.publish.modbus_map > docs/modbus-map.md`; do not edit. -->",
        "",
        "Served by meterhub's Modbus server (`modbus_server:` in the site file, see docs/modbus-server.md) at",
        "unit id `flat_map_unit` (default **247**), function code 3 or 4, read-only (its coils are the relays",
        "of `modbus_server.relays`, if any). Every circuit of the",
        "site (in the order of `circuits:`, at most 64) has a block of 1000 registers starting at",
        "`1000 × n` (n = 1, 2, …). Floats are IEEE 754, big-endian, high word first (mbpoll: `-B`).",
        "A value that is missing, invalid or stale reads as NaN.",
        "",
        "## Header (registers 0–19)",
        "",
        "| register | content |",
        "|---|---|",
        f"| 0 | map version ({MAP_VERSION}) |",
        "| 1 | number of circuit blocks |",
        f"| 2 | registers per block ({BLOCK}) |",
        f"| 3 | offset of the first value in a block ({FIRST_VALUE}) |",
        "",
        "## Circuit block (offsets from `1000 × n`)",
        "",
        "| offset | registers | type | quantity | phase | unit | description |",
        "|---|---|---|---|---|---|---|",
        "| 0 | 1 | uint16 | SunSpec unit id of the circuit (0: not served as SunSpec) | | | |",
        "| 1 | 16 | string | circuit id, ASCII, NUL padded | | | |",
    ]
    for e in _ENTRIES:
        q = quantities.get(e.quantity)
        kind = "float32" if e.size == 2 else "float64"
        lines.append(
            f"| {e.offset} | {e.size} | {kind} | `{e.quantity}` | {e.phase.value} | {q.unit or '–'} "
            f"| {q.description.replace('|', '/')} |"
        )
    lines += [
        "",
        "Example: the total active power of circuit 1 is `active_power` / total; with the offset above it is",
        "read by `mbpoll -m tcp -a 247 -0 -r 1000+OFFSET -t 4:float -B -c 1 HOST -p PORT`.",
        "",
    ]
    return "\n".join(lines)


def entry_of(quantity: str, phase: Phase) -> FlatEntry:
    """The entry of one series (raises KeyError when the catalogue has no such phase)."""
    for e in _ENTRIES:
        if e.quantity == quantity and e.phase is phase:
            return e
    raise KeyError(f"{quantity} {phase.value}")


def _main(argv: Sequence[str] = ()) -> None:  # pragma: no cover - a two-line script
    print(render_markdown(), end="")


if __name__ == "__main__":  # pragma: no cover
    _main()
