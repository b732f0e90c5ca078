"""The profile format: a device's vendor register map as data (``src/meterhub/profiles/*.yaml``).

A profile names the vendor document its facts come from and maps registers to catalogue quantity
ids (STYLE.md §3, like pvlib's ``VARIABLE_MAP``). The same file drives the reader (coalesced block
reads, :mod:`meterhub.drivers.modbus.planner`) and the simulator (:mod:`meterhub.sim.modbus_server`),
which both import the format from here and nothing from each other. The format is documented in
``src/meterhub/profiles/SCHEMA.md``; the register data types are in :mod:`.datatypes`.

Errors name the file, line, field and what would be valid, like the site loader.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from meterhub.config.ct import CTKind
from meterhub.errors import ConfigurationError
from meterhub.model import quantities
from meterhub.model.quantities import Kind
from meterhub.model.topology import Phase
from meterhub.profiles.datatypes import ByteOrder, DataType, WordOrder, register_count

__all__ = [
    "Function",
    "IdentEntry",
    "Point",
    "Profile",
    "ProfileError",
    "ProfileKind",
    "RatioRegister",
    "RegisterEntry",
    "Transformers",
    "ValuesSide",
    "WritableEntry",
    "load_profile_file",
    "parse_profile",
    "unit_factor",
]

ProfileId = str


class Function(StrEnum):
    """Modbus data table (Modbus Application Protocol V1.1b3 §4.3) and its read function code."""

    COIL = "coil"  # FC 01, write 05/15
    DISCRETE = "discrete"  # FC 02
    HOLDING = "holding"  # FC 03, write 06/16
    INPUT = "input"  # FC 04

    @property
    def read_code(self) -> int:
        return {"coil": 1, "discrete": 2, "holding": 3, "input": 4}[self.value]

    @property
    def is_bit(self) -> bool:
        return self in (Function.COIL, Function.DISCRETE)


class ProfileKind(StrEnum):
    """What a device measures, which decides how its values map onto circuits."""

    METER = "meter"  # a complete meter: per-phase values (phase L1…L3) and totals
    VOLTAGE_UNIT = "voltage-unit"  # voltages and frequency only (seed 000 V10)
    CURRENT_MODULE = "current-module"  # per-channel I/P/Q/S/PF/energy, voltage from a voltage unit
    IO = "io"  # digital / analog inputs and outputs (seed 000 DIO-4/2, AIO-2/2)
    CONCENTRATOR = "concentrator"  # pulse concentrator (seed 003)


class ProfileError(ConfigurationError):
    """A profile that cannot be used; ``issues`` are ``file:line: field: message`` lines."""

    def __init__(self, issues: list[str]) -> None:
        super().__init__("\n".join(issues))
        self.issues = issues


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Defaults(_Strict):
    """Protocol defaults of the device and defaults for register entries."""

    unit: int = Field(default=1, ge=1, le=247, description="factory Modbus unit id")
    baud: int = Field(default=9600, ge=300, le=921600)
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    function: Function = Function.INPUT
    type: DataType = DataType.FLOAT32
    word_order: WordOrder = WordOrder.BIG
    byte_order: ByteOrder = ByteOrder.BIG
    max_block: int = Field(default=125, ge=1, le=125, description="registers per read the device accepts")
    max_gap: int = Field(
        default=16, ge=0, le=124, description="unmapped registers a block may bridge (device tolerates holes)"
    )


class BusPower(_Strict):
    """Module bus power (seed 000 §7.1): what a module supplies to and draws from the bus. [W]"""

    provided: float = Field(default=0.0, ge=0)
    consumption: float = Field(default=0.0, ge=0)


class RegisterEntry(_Strict):
    """One mapped value. Missing protocol fields come from the profile ``defaults``."""

    quantity: str
    phase: Phase | None = None
    channel: int | None = Field(default=None, ge=1, le=64, description="input/current channel, 1-based")
    function: Function | None = None
    address: int = Field(ge=0, le=65535, description="PDU address, 0-based (30001 → input 0)")
    type: DataType | None = None
    word_order: WordOrder | None = None
    byte_order: ByteOrder | None = None
    unit: str | None = Field(default=None, description="vendor unit, e.g. kWh; converted to the catalogue")
    scale: float = Field(default=1.0, description="raw × scale = value in `unit`")
    exponent: int = Field(default=0, ge=-9, le=9, description="raw × 10^exponent")
    count: int = Field(default=1, ge=1, le=64, description="consecutive values (spectra, orders from 1)")
    order_start: int = Field(default=1, ge=0, le=63, description="harmonic order of the first of `count`")
    note: str = ""


class IdentEntry(_Strict):
    """An identification register read by ``meterhub scan``.

    It matches when it reads ``value`` (a model code: a sure match), or a value within ``min``…``max``
    (a plausibility check, e.g. a voltage register: a likely match), or — with neither — when the device
    answers at all (e.g. a serial number, reported).
    """

    name: str = "model"
    function: Function = Function.HOLDING
    address: int = Field(ge=0, le=65535)
    type: DataType = DataType.UINT16
    word_order: WordOrder | None = None
    value: float | None = None
    min: float | None = None
    max: float | None = None

    def matches(self, v: float) -> bool | None:
        """True/False for a model code or a range; None when the entry only reports the value."""
        if self.value is not None:
            return v == self.value
        if self.min is not None or self.max is not None:
            lo = -math.inf if self.min is None else self.min
            hi = math.inf if self.max is None else self.max
            return lo <= v <= hi
        return None


class WritableEntry(_Strict):
    """A point the gateway may write (relay, reset command)."""

    name: str = Field(pattern=r"^[a-z0-9_]+$")
    function: Function = Function.HOLDING
    address: int = Field(ge=0, le=65535)
    type: DataType = DataType.UINT16
    word_order: WordOrder | None = None
    value: float | None = Field(default=None, description="fixed command value (resets)")
    quantity: str | None = None
    channel: int | None = Field(default=None, ge=1, le=64)
    description: str = ""


class ValuesSide(StrEnum):
    """Which side of the instrument transformers a device's values are on."""

    PRIMARY = "primary"  # the device applies its own CT/VT ratio (or its CT is its own, or no CT)
    SECONDARY = "secondary"  # the device reports what its inputs see: meterhub applies the ratio


class RatioRegister(_Strict):
    """Where the device keeps a transformer setting, as its vendor table names it."""

    function: Function = Function.HOLDING
    address: int = Field(ge=0, le=65535, description="PDU address, 0-based")
    type: DataType = DataType.FLOAT32
    word_order: WordOrder | None = None
    holds: Literal["primary", "ratio"] = Field(
        default="primary", description="the rated primary [A or V] (secondary fixed), or primary/secondary"
    )
    source: str = Field(min_length=3, description="the vendor table that names the register")


class Transformers(_Strict):
    """CT/VT semantics of a device (``transformers:``): which side its values are on, and where it keeps
    its ratio when it applies one itself."""

    values: ValuesSide
    secondary_with: list[CTKind] = Field(
        default_factory=list,
        description="CT kinds with which a primary-valued device reports the CT's secondary side "
        "(an adapter behind a conventional x/5 A CT whose ratio only the site file knows)",
    )
    ct_register: RatioRegister | None = None
    vt_register: RatioRegister | None = None
    note: str = ""


class Profile(_Strict):
    """A device profile."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    vendor: str
    model: str
    source: str = Field(min_length=3, description="vendor document title and version the facts come from")
    description: str = ""
    kind: ProfileKind = ProfileKind.METER
    channels: int = Field(default=0, ge=0, le=64, description="current/input channels (modules)")
    defaults: Defaults = Field(default_factory=Defaults)
    bus_power: BusPower | None = None
    identification: list[IdentEntry] = Field(default_factory=list)
    registers: list[RegisterEntry] = Field(default_factory=list)
    writable: list[WritableEntry] = Field(default_factory=list)
    transformers: Transformers | None = Field(
        default=None, description="CT/VT semantics; unset: primary values (every shipped profile sets it)"
    )
    # (registers, defaults, points): the resolved points, valid while those two are the same objects
    _points: tuple[object, object, tuple[Point, ...]] | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _channels(self) -> Profile:
        if self.kind is ProfileKind.CURRENT_MODULE and self.channels < 1:
            raise ValueError("a current-module profile needs 'channels' ≥ 1")
        return self

    def applies_ratios(self, ct_kind: CTKind) -> tuple[bool, bool]:
        """Whether meterhub applies a circuit's (CT ratio, VT ratio) to this device's values: a device
        reporting secondary values needs both (VT only where it has voltage inputs, i.e. a meter); a
        primary one neither, except the CT ratio with a CT kind in ``secondary_with``."""
        t = self.transformers
        if t is None:
            return False, False
        if t.values is ValuesSide.SECONDARY:
            return True, self.kind is ProfileKind.METER
        return ct_kind in t.secondary_with, False

    def points(self) -> list[Point]:
        """Every register entry resolved against the defaults (spectra expanded per order).

        Resolved once per profile: every reader of the profile shares the same (frozen) point objects,
        so the per-poll dictionaries keyed by points hit by identity instead of comparing fields.
        """
        cached = self._points
        if cached is not None and cached[0] is self.registers and cached[1] is self.defaults:
            return list(cached[2])
        out = self._resolve_points()
        self._points = (self.registers, self.defaults, tuple(out))
        return out

    def _resolve_points(self) -> list[Point]:
        out: list[Point] = []
        d = self.defaults
        for i, e in enumerate(self.registers):
            q = quantities.get(e.quantity)
            fn = e.function or d.function
            dtype = e.type or d.type
            size = 1 if fn.is_bit else register_count(dtype)
            factor = e.scale * 10.0**e.exponent * unit_factor(e.unit, q.unit, e.quantity)
            for k in range(e.count):
                out.append(
                    Point(
                        index=i,
                        quantity=e.quantity,
                        phase=e.phase,
                        channel=e.channel,
                        function=fn,
                        address=e.address + k * size,
                        dtype=dtype,
                        word_order=e.word_order or d.word_order,
                        byte_order=e.byte_order or d.byte_order,
                        factor=factor,
                        size=size,
                        order=e.order_start + k if e.count > 1 else None,
                        cumulative=q.kind is Kind.CUMULATIVE,
                    )
                )
        return out

    def point_channels(self) -> list[int]:
        """Channels the registers use, in order (meters: 1…3 for L1…L3)."""
        return sorted({e.channel for e in self.registers if e.channel is not None})


@dataclass(frozen=True, slots=True)
class Point:
    """A resolved register entry: where one value lives and how to turn it into catalogue units."""

    index: int  # position in Profile.registers
    quantity: str
    phase: Phase | None
    channel: int | None
    function: Function
    address: int
    dtype: DataType
    word_order: WordOrder
    byte_order: ByteOrder
    factor: float  # raw × factor = catalogue unit
    size: int  # registers (or bits for coil/discrete)
    order: int | None = None  # harmonic order for spectrum entries
    cumulative: bool = False
    _hash: int = field(default=0, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # points key the decoded values of every poll: hash once, not on every lookup
        object.__setattr__(self, "_hash", hash((self.index, self.function, self.address, self.order)))

    def __hash__(self) -> int:
        return self._hash

    @property
    def end(self) -> int:
        return self.address + self.size

    def label(self) -> str:
        """Human name for logs: ``energy_active_import/L1 ch2 @input 0x0048``."""
        parts = [self.quantity]
        if self.phase is not None:
            parts[0] += f"/{self.phase.value}"
        if self.channel is not None:
            parts.append(f"ch{self.channel}")
        if self.order is not None:
            parts.append(f"h{self.order}")
        parts.append(f"@{self.function.value} {self.address} (0x{self.address:04X})")
        return " ".join(parts)


# --- units ---------------------------------------------------------------------------------
_PREFIX = {"k": 1e3, "M": 1e6, "G": 1e9, "m": 1e-3, "c": 1e-2, "d": 1e-1}
_ALIASES = {"VAr": "var", "VAR": "var", "VArh": "varh", "Varh": "varh", "deg": "°", "degC": "°C", "pct": "%"}


def unit_factor(vendor_unit: str | None, catalogue_unit: str, quantity: str = "") -> float:
    """Multiplier from a vendor unit to the catalogue unit, e.g. ``kWh`` → ``Wh`` is 1000. [-]

    Accepts the catalogue unit itself, SI prefixes k, M, G, m, c, d on it, and % ↔ dimensionless.
    """
    if vendor_unit is None or vendor_unit == catalogue_unit:
        return 1.0
    vu = _ALIASES.get(vendor_unit, vendor_unit)
    for alias, canon in _ALIASES.items():
        if vu.endswith(alias) and len(vu) > len(alias):
            vu = vu[: -len(alias)] + canon
    if vu == catalogue_unit:
        return 1.0
    if vu == "%" and catalogue_unit == "":
        return 0.01
    if vu == "" and catalogue_unit == "%":
        return 100.0
    if len(vu) > 1 and vu[0] in _PREFIX and vu[1:] == catalogue_unit:
        return _PREFIX[vu[0]]
    raise ValueError(
        f"unit {vendor_unit!r} cannot be converted to {catalogue_unit or 'dimensionless'!r}"
        f"{' for ' + quantity if quantity else ''} (use the catalogue unit, an SI prefix of it, or 'scale')"
    )


# --- loading with file:line errors ---------------------------------------------------------
Loc = tuple[str | int, ...]


def _line_map(node: yaml.Node, path: Loc, out: dict[Loc, int]) -> None:
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            _line_map(value_node, (*path, key_node.value), out)
            out[(*path, key_node.value)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _line_map(item, (*path, i), out)


def _line_of(lines: dict[Loc, int], loc: Iterable[Any]) -> int | None:
    parts = [p for p in loc if isinstance(p, int) or "[" not in str(p)]
    while parts:
        if tuple(parts) in lines:
            return lines[tuple(parts)]
        parts.pop()
    return lines.get(())


def _field(loc: Iterable[Any]) -> str:
    out = ""
    for p in loc:
        if isinstance(p, str) and "[" in p:
            continue
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(file)"


def parse_profile(text: str, filename: str = "<string>") -> Profile:
    """Validate YAML text as a profile; raise :class:`ProfileError` listing every problem."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else "?"
        raise ProfileError([f"{filename}:{line}: (file): YAML syntax: {exc.problem}"]) from None
    if not isinstance(data, dict) or node is None:
        raise ProfileError([f"{filename}:1: (file): a profile is a YAML mapping with id, vendor, model"])
    lines: dict[Loc, int] = {}
    _line_map(node, (), lines)
    try:
        profile = Profile.model_validate(data)
    except ValidationError as exc:
        issues = []
        for err in exc.errors(include_url=False):
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown field (see src/meterhub/profiles/SCHEMA.md)"
            elif err["type"] == "missing":
                msg = "required field is missing"
            issues.append(f"{filename}:{_line_of(lines, err['loc'])}: {_field(err['loc'])}: {msg}")
        raise ProfileError(issues) from None
    issues = [
        f"{filename}:{_line_of(lines, loc)}: {_field(loc)}: {msg}" for loc, msg in _semantic_checks(profile)
    ]
    if issues:
        raise ProfileError(issues)
    return profile


def load_profile_file(path: str | Path) -> Profile:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProfileError([f"{p}: (file): cannot read: {exc.strerror}"]) from None
    profile = parse_profile(text, str(p))
    if p.suffix == ".yaml" and p.stem != profile.id:
        raise ProfileError([f"{p}:1: id: profile id {profile.id!r} must equal the file name {p.stem!r}"])
    return profile


def _semantic_checks(profile: Profile) -> Iterable[tuple[Loc, str]]:
    d = profile.defaults
    seen: dict[tuple[Function, int], int] = {}
    keys: dict[tuple[str, Phase | None, int | None], int] = {}
    for i, e in enumerate(profile.registers):
        loc: Loc = ("registers", i)
        try:
            q = quantities.get(e.quantity)
        except quantities.UnknownQuantityError as exc:
            yield (*loc, "quantity"), str(exc)
            continue
        if e.phase is not None and e.phase not in q.phases:
            allowed = ", ".join(p.value for p in q.phases)
            yield (*loc, "phase"), f"{e.quantity} has no phase {e.phase.value!r} (allowed: {allowed})"
        if e.channel is not None and profile.channels and e.channel > profile.channels:
            yield (*loc, "channel"), f"channel {e.channel} > the profile's {profile.channels} channel(s)"
        if profile.kind is ProfileKind.CURRENT_MODULE and e.channel is None and e.phase is None:
            yield (
                (*loc, "channel"),
                "a current-module register needs 'channel' (or 'phase' for device values)",
            )
        if e.count > 1 and q.kind is not Kind.SPECTRUM:
            yield (*loc, "count"), f"'count' > 1 is only for spectrum quantities, not {e.quantity}"
        try:
            unit_factor(e.unit, q.unit, e.quantity)
        except ValueError as exc:
            yield (*loc, "unit"), str(exc)
            continue
        fn = e.function or d.function
        dtype = e.type or d.type
        size = 1 if fn.is_bit else register_count(dtype)
        if e.address + size * e.count > 65536:
            yield (*loc, "address"), "value runs past address 65535"
        key = (e.quantity, e.phase, e.channel)
        if e.count == 1 and key in keys:
            yield (
                loc,
                f"{e.quantity} phase {e.phase} channel {e.channel} is already mapped by registers[{keys[key]}]",
            )
        keys[key] = i
        for k in range(size * e.count):
            where = (fn, e.address + k)
            if where in seen:
                other = seen[where]
                yield (
                    (*loc, "address"),
                    (
                        f"{fn.value} register {e.address + k} overlaps registers[{other}] "
                        f"({profile.registers[other].quantity})"
                    ),
                )
                break
            seen[where] = i
    for i, w in enumerate(profile.writable):
        if w.quantity is not None and w.quantity not in quantities.CATALOGUE:
            yield ("writable", i, "quantity"), str(quantities.UnknownQuantityError(w.quantity))
        if w.function not in (Function.HOLDING, Function.COIL):
            yield ("writable", i, "function"), "only holding registers and coils can be written"
