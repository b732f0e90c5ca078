"""``modbus_server:`` — meterhub's live values served to a BMS, SCADA, EMS or inverter over Modbus (issue 13).

Example::

    modbus_server:
      tcp: {host: 0.0.0.0, port: 502}             # Modbus TCP (MBAP), any number of clients
      rtu: {device: /dev/ttyUSB1, baud: 19200, parity: E}   # and/or an RTU slave on an RS485 line
      encoding: int                               # SunSpec 201-204 (int16 + scale factors); float: 211-214
      circuits:                                   # default: every AC circuit, units 1, 2, 3 … in file order
        - {circuit: grid, unit: 1}
        - {circuit: pv, unit: 2, encoding: float}
      flat_map_unit: 247                          # the flat map of docs/modbus-map.md (null: not served)
      relays: [fan-relay]                         # coils a BMS may switch: coil 0 … of the flat map's unit

Each selected circuit is a SunSpec device at its own unit id: the SunSpec header "SunS" at register
40000, the common model 1, then the meter model of its wiring (1P2W → 201, 1P3W → 202, 3P4W → 203,
3P3W → 204; 211-214 with ``encoding: float``), then the end marker 0xFFFF (SunSpec Information Model
Specification 1.0, §4; models as in the SunSpec Alliance's model definitions, ``model_20x.json``).

A value older than ``stale_after`` seconds (default: three poll intervals of its device, at least 5 s)
is served as SunSpec's "not implemented" value, as is a value the energy stage marked invalid: a BMS
sees missing data, never a stale number. Registers are read-only (function codes 3 and 4); writes get
exception 01 (illegal function). The only writable points are the coils of ``relays``: latched relay
outputs of the ``io:`` section, coil *n* (from 0) of the flat map's unit being ``relays[n]``, switched
through meterhub's output control (written on the line that polls the device, read back) and logged on
the audit log.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, Literal

from pydantic import Field, model_validator

from meterhub.config.reader import Loc
from meterhub.config.types import Identifier, NoBool, StrictModel
from meterhub.model.topology import Wiring

__all__ = [
    "DEFAULT_FLAT_MAP_UNIT",
    "MIN_STALE_AFTER",
    "ModbusServerConfig",
    "RtuEndpoint",
    "ServedCircuit",
    "TcpEndpoint",
    "modbus_server_issues",
    "served_circuits",
]

#: Unit id of the flat map when none is configured: the highest RTU address (Modbus over Serial Line
#: V1.02 §2.2: 1-247), so that circuits numbered from 1 never meet it.
DEFAULT_FLAT_MAP_UNIT = 247
#: Shortest default age after which a value is served as "not implemented" [s].
MIN_STALE_AFTER = 5.0

#: How the meter models carry values: ``int`` (models 201-204, int16/acc32 with scale factors) or
#: ``float`` (models 211-214, float32).
Encoding = Literal["int", "float"]

Unit = Annotated[int, Field(ge=1, le=247, description="Modbus unit id (1-247)")]


class TcpEndpoint(StrictModel):
    """Modbus TCP: the server listens here (Modbus Messaging on TCP/IP Implementation Guide V1.0b)."""

    host: str = Field(default="127.0.0.1", min_length=1, max_length=253)
    port: int = Field(default=502, ge=0, le=65535, description="0: a free port, chosen at start")


class RtuEndpoint(StrictModel):
    """An RTU slave on a serial line (Modbus over Serial Line V1.02; RS485 through a local port)."""

    device: str = Field(min_length=1, max_length=4096, description="serial port, e.g. /dev/ttyUSB1")
    baud: int = Field(default=9600, ge=300, le=921600, description="[bit/s]")
    parity: Literal["N", "E", "O"] = "E"
    stopbits: Annotated[Literal[1, 2], NoBool] = 1


class ServedCircuit(StrictModel):
    """One circuit served as a SunSpec meter at ``unit``; ``encoding`` overrides the section's."""

    circuit: Identifier
    unit: Unit
    encoding: Encoding | None = None


class ModbusServerConfig(StrictModel):
    """``modbus_server:`` — see the module docstring."""

    enabled: bool = True
    tcp: TcpEndpoint | None = None
    rtu: RtuEndpoint | None = None
    encoding: Encoding = Field(
        default="int", description="int: SunSpec 201-204 (int16 + scale factors); float: 211-214 (float32)"
    )
    circuits: list[ServedCircuit] | None = Field(
        default=None, max_length=246, description="default: every AC circuit at units 1, 2, 3 … in file order"
    )
    flat_map_unit: Unit | None = DEFAULT_FLAT_MAP_UNIT
    stale_after: float | None = Field(
        default=None,
        gt=0,
        le=86400,
        description="age after which a value is served as not implemented [s]; "
        "default: 3 × its device's poll interval, at least 5 s",
    )
    manufacturer: str = Field(default="meterhub", min_length=1, max_length=32, pattern=r"^[\x20-\x7e]*$")
    relays: list[Identifier] = Field(
        default_factory=list,
        max_length=2000,
        description="latched relay points (io: section) a BMS may switch: coil n of the flat map's unit",
    )

    @model_validator(mode="after")
    def _somewhere(self) -> ModbusServerConfig:
        if self.enabled and self.tcp is None and self.rtu is None:
            raise ValueError("say where to serve: 'tcp: {host, port}' and/or 'rtu: {device, baud, parity}'")
        return self


def served_circuits(
    section: ModbusServerConfig, circuits: Sequence[tuple[str, Wiring]]
) -> list[ServedCircuit]:
    """The circuits the server serves, each with its unit id: the configured list, or every circuit
    of the site (``circuits``: id and wiring, in file order) whose wiring has a SunSpec meter model
    (not DC), at units 1, 2, 3 … (skipping the flat map's)."""
    if section.circuits is not None:
        return list(section.circuits)
    ac = [cid for cid, wiring in circuits if wiring is not Wiring.DC]
    units = (u for u in range(1, 248) if u != section.flat_map_unit)
    return [ServedCircuit(circuit=c, unit=u) for c, u in zip(ac, units, strict=False)]


def modbus_server_issues(
    section: ModbusServerConfig | None,
    circuits: Sequence[tuple[str, Wiring]],
    points: Mapping[str, str] | None = None,
) -> Iterable[tuple[Loc, str]]:
    """Cross-checks of ``modbus_server:`` against the site's circuits (id and wiring) and IO points
    (id → kind, ``relay`` for a latched relay, ``relay (pulse)`` for a pulse one): known AC circuits,
    each once, unit ids used once, relays that are latched relay points, with a flat map to carry them.
    Yields ``(location, message)`` like every site check."""
    if section is None:
        return
    for i, point in enumerate(section.relays):
        kind = (points or {}).get(point)
        if kind is None:
            yield (
                ("modbus_server", "relays", i),
                f"unknown IO point {point!r} (relays are io: points of kind relay)",
            )
        elif kind != "relay":
            why = "a pulse-mode relay" if kind == "relay (pulse)" else f"a {kind} point"
            yield (
                ("modbus_server", "relays", i),
                f"{point!r} is {why}; only latched relays can be coils (a coil holds a state)",
            )
    if section.relays and section.flat_map_unit is None:
        yield ("modbus_server", "relays"), "relays are coils of the flat map's unit: set flat_map_unit"
    if section.circuits is None:
        return
    wiring = dict(circuits)
    units: dict[int, str] = {}
    seen: set[str] = set()
    if section.flat_map_unit is not None:
        units[section.flat_map_unit] = "the flat map (flat_map_unit)"
    for i, entry in enumerate(section.circuits):
        loc: Loc = ("modbus_server", "circuits", i)
        if entry.circuit not in wiring:
            known = ", ".join(sorted(wiring)[:8]) + (", …" if len(wiring) > 8 else "") if wiring else "none"
            yield (*loc, "circuit"), f"unknown circuit {entry.circuit!r} (known: {known})"
        elif wiring[entry.circuit] is Wiring.DC:
            yield (*loc, "circuit"), f"circuit {entry.circuit!r} is DC: SunSpec has no meter model for it"
        if entry.circuit in seen:
            yield (*loc, "circuit"), f"circuit {entry.circuit!r} is served twice"
        seen.add(entry.circuit)
        if entry.unit in units:
            yield (*loc, "unit"), f"unit {entry.unit} is already used by {units[entry.unit]}"
        else:
            units[entry.unit] = f"circuit {entry.circuit!r}"
