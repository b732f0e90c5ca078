"""OBIS codes and OBIS device profiles: how a meter's OBIS-addressed values map to catalogue quantities.

A meter that speaks IEC 62056-21 or DLMS/COSEM names every value by an OBIS code (IEC 62056-61:2017
§4, value groups ``A-B:C.D.E*F``). An OBIS profile (``src/meterhub/profiles/obis/<id>.yaml``) is the
table from those codes to catalogue ids (STYLE.md §3, like the Modbus register maps one directory up),
with the unit the meter states; the driver checks the unit of every value against it.

Profile file::

    id: obis-generic
    vendor: (any)
    model: IEC 62056-21 / DLMS meter
    source: IEC 62056-61:2017 §5 and the quantity catalogue's OBIS codes
    description: one line for people
    catalogue_codes: true       # also map every OBIS code the catalogue names (1.8.0 → energy_active_import …)
    serial_number: [96.1.0, 0.0.0]   # codes holding the meter's serial number, first found wins
    codes:
      - {obis: 1.8.0, quantity: energy_active_import, unit: kWh}
      - {obis: 32.7.0, quantity: voltage, phase: L1, unit: V}

Code forms accepted (IEC 62056-61 §5.3 and the reduced forms of IEC 62056-21 data sets): ``C.D``,
``C.D.E``, ``A-B:C.D.E``, ``A-B:C.D.E*F`` (``&F`` too), and the dotted DLMS forms ``A.B.C.D.E`` and
``A.B.C.D.E.F``. The letters ``C``, ``F``, ``L``, ``P`` in groups C and D stand for 96…99 (IEC 62056-61
§5.8: "C" general service entries, "F" error messages, "L" list objects, "P" data profiles).

Unit check (:meth:`ObisProfile.decode`): a value that carries a unit (``1.8.0(001234.567*kWh)``) must
be convertible to the catalogue unit of its quantity (kWh → Wh ×1000), else it is refused with the
code, the unit and what was expected; a value without a unit takes the profile entry's ``unit`` and is
refused if the entry has none and the quantity is not dimensionless.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from meterhub.model import quantities
from meterhub.model.quantities import CATALOGUE, obis_code
from meterhub.model.topology import Phase
from meterhub.profiles.schema import ProfileError, unit_factor

__all__ = [
    "OBIS_PROFILE_DIR",
    "Mapped",
    "ObisCode",
    "ObisEntry",
    "ObisProfile",
    "ObisValue",
    "get_obis_profile",
    "obis_profile_ids",
    "parse_obis_profile",
]

OBIS_PROFILE_DIR = Path(__file__).resolve().parent / "obis"

#: Letters that stand for numbers in value groups C and D (IEC 62056-61 §5.8).
_LETTERS = {"C": 96, "F": 97, "L": 98, "P": 99}
_GROUP = r"(\d{1,3}|[CFLP])"
_REDUCED = re.compile(
    rf"^(?:(\d{{1,3}})-(\d{{1,3}}):)?{_GROUP}\.{_GROUP}(?:\.(\d{{1,3}}))?(?:[*&](\d{{1,3}}))?$"
)
_DOTTED = re.compile(r"^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?:\.(\d{1,3}))?$")


def _group(text: str) -> int:
    return _LETTERS[text] if text in _LETTERS else int(text)


@dataclass(frozen=True, slots=True)
class ObisCode:
    """An OBIS code; ``None`` in A, B or F means "not given" (the reduced forms of a readout).

    a : medium (1 electricity, 0 abstract) · b : channel · c : quantity · d : processing · e : tariff
    or further classification · f : billing period (255: current). [-]
    """

    a: int | None
    b: int | None
    c: int
    d: int
    e: int
    f: int | None = None

    @classmethod
    def parse(cls, text: str) -> ObisCode:
        """Parse any accepted form; :class:`ValueError` naming the text otherwise."""
        t = text.strip()
        m = _DOTTED.match(t)
        if m is not None:
            a, b, c, d, e, f = m.groups()
            code = cls(int(a), int(b), int(c), int(d), int(e), None if f is None else int(f))
        else:
            m = _REDUCED.match(t)
            if m is None:
                raise ValueError(f"{text!r} is not an OBIS code (e.g. 1.8.0, 1-0:1.8.0*255, 1.0.1.8.0.255)")
            a, b, c, d, e, f = m.groups()
            code = cls(
                None if a is None else int(a),
                None if b is None else int(b),
                _group(c),
                _group(d),
                0 if e is None else int(e),
                None if f is None else int(f),
            )
        for v in (code.a, code.b, code.c, code.d, code.e, code.f):
            if v is not None and not 0 <= v <= 255:
                raise ValueError(f"{text!r}: OBIS value groups are 0…255")
        return code

    @property
    def cde(self) -> tuple[int, int, int]:
        return (self.c, self.d, self.e)

    def matches(self, other: ObisCode) -> bool:
        """Same C.D.E, and A, B, F equal wherever both codes give them."""
        if self.cde != other.cde:
            return False
        return all(
            x is None or y is None or x == y
            for x, y in ((self.a, other.a), (self.b, other.b), (self.f, other.f))
        )

    def __str__(self) -> str:
        ab = f"{self.a}-{self.b}:" if self.a is not None and self.b is not None else ""
        f = f"*{self.f}" if self.f is not None else ""
        return f"{ab}{self.c}.{self.d}.{self.e}{f}"


@dataclass(frozen=True, slots=True)
class ObisValue:
    """One value a meter gave: its code, the text of the value and the unit it stated (or None)."""

    code: ObisCode
    value: str
    unit: str | None = None


@dataclass(frozen=True, slots=True)
class Mapped:
    """A value in catalogue terms: quantity id, phase, value in the catalogue unit."""

    quantity: str
    phase: Phase
    value: float
    code: ObisCode


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ObisEntry(_Strict):
    """One mapped code of a profile."""

    obis: str
    quantity: str
    phase: Phase | None = Field(
        default=None, description="default: the catalogue's phase of the code, else total"
    )
    unit: str | None = Field(
        default=None, description="the unit the meter states; used when a value has none"
    )
    scale: float = Field(default=1.0, description="value × scale = value in `unit`")
    note: str = ""

    @field_validator("obis")
    @classmethod
    def _code(cls, v: str) -> str:
        ObisCode.parse(v)
        return v

    @field_validator("quantity")
    @classmethod
    def _known(cls, v: str) -> str:
        quantities.get(v)  # UnknownQuantityError is a KeyError: turned into a ValueError below
        return v


class _ProfileModel(_Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    vendor: str
    model: str
    source: str
    description: str = ""
    catalogue_codes: bool = False
    serial_number: list[str] = Field(default_factory=list)
    codes: list[ObisEntry] = Field(default_factory=list)


@dataclass(frozen=True)
class _Resolved:
    code: ObisCode
    quantity: str
    phase: Phase
    unit: str | None
    scale: float


class ObisProfile:
    """A validated OBIS profile: code → (quantity, phase, unit) and the serial-number codes."""

    def __init__(self, model: _ProfileModel) -> None:
        self.id = model.id
        self.vendor = model.vendor
        self.model = model.model
        self.source = model.source
        self.description = model.description
        self.serial_codes = tuple(ObisCode.parse(s) for s in model.serial_number)
        entries: list[_Resolved] = []
        for e in model.codes:
            code = ObisCode.parse(e.obis)
            phase = e.phase or _catalogue_phase(e.quantity, code) or Phase.TOTAL
            q = CATALOGUE[e.quantity]
            if phase not in q.phases:
                raise ValueError(f"{e.obis}: {e.quantity} has no phase {phase.value}")
            if e.unit is not None:
                unit_factor(e.unit, q.unit, e.quantity)  # ValueError when it does not convert
            entries.append(_Resolved(code, e.quantity, phase, e.unit, e.scale))
        if model.catalogue_codes:
            given = {r.code.cde for r in entries}
            for q in CATALOGUE.values():
                for ph in q.phases:
                    text = obis_code(q, ph)
                    if text is None:
                        continue
                    code = ObisCode.parse(text)
                    if code.cde not in given:
                        given.add(code.cde)
                        entries.append(_Resolved(code, q.id, ph, None, 1.0))
        self._by_cde: dict[tuple[int, int, int], list[_Resolved]] = {}
        for r in entries:
            self._by_cde.setdefault(r.code.cde, []).append(r)

    def codes(self) -> list[ObisCode]:
        """Every mapped code, in profile order (the explicit entries first)."""
        return [r.code for rs in self._by_cde.values() for r in rs]

    def entry(self, code: ObisCode) -> tuple[str, Phase] | None:
        """The (quantity, phase) ``code`` maps to, or None."""
        r = self._find(code)
        return None if r is None else (r.quantity, r.phase)

    def _find(self, code: ObisCode) -> _Resolved | None:
        for r in self._by_cde.get(code.cde, ()):
            if r.code.matches(code):
                return r
        return None

    def serial_number(self, values: list[ObisValue]) -> str | None:
        """The meter's serial number among ``values`` (the first serial-number code found)."""
        for sc in self.serial_codes:
            for v in values:
                if sc.matches(v.code) and v.value.strip():
                    return v.value.strip()
        return None

    def decode(self, values: list[ObisValue]) -> tuple[list[Mapped], list[str]]:
        """Values in catalogue units, and a message for every value that was refused.

        Codes the profile does not map are ignored (a readout carries much that is not measured:
        status words, firmware, parameters). A refused value names its code, value and why.
        """
        out: list[Mapped] = []
        problems: list[str] = []
        for v in values:
            r = self._find(v.code)
            if r is None:
                continue
            cat_unit = CATALOGUE[r.quantity].unit
            unit = v.unit if v.unit is not None else r.unit
            if unit is None and cat_unit not in ("", "%"):
                problems.append(
                    f"{v.code}({v.value}): no unit given for {r.quantity} [{cat_unit}] and none in profile "
                    f"{self.id}"
                )
                continue
            try:
                factor = unit_factor(unit, cat_unit, r.quantity)
            except ValueError as exc:
                problems.append(f"{v.code}({v.value}*{unit}): {exc}")
                continue
            try:
                number = float(v.value)
            except ValueError:
                problems.append(f"{v.code}({v.value}): not a number for {r.quantity}")
                continue
            if not math.isfinite(number):
                problems.append(f"{v.code}({v.value}): not a finite number for {r.quantity}")
                continue
            out.append(Mapped(r.quantity, r.phase, number * r.scale * factor, v.code))
        return out, problems


def _catalogue_phase(quantity: str, code: ObisCode) -> Phase | None:
    q = CATALOGUE[quantity]
    for ph in q.phases:
        text = obis_code(q, ph)
        if text is not None and ObisCode.parse(text).cde == code.cde:
            return ph
    return None


def parse_obis_profile(text: str, filename: str = "<string>") -> ObisProfile:
    """Validate a profile's YAML text; :class:`ProfileError` with ``file: field: message`` lines."""
    try:
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ProfileError([f"{filename}: not valid YAML: {exc}"]) from None
    if not isinstance(data, dict):
        raise ProfileError([f"{filename}: a profile is a mapping (id, vendor, model, source, codes)"])
    try:
        return ObisProfile(_ProfileModel.model_validate(data))
    except ValidationError as exc:
        issues = [f"{filename}: {'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()]
        raise ProfileError(issues) from None
    except (ValueError, KeyError) as exc:
        raise ProfileError([f"{filename}: {exc}"]) from None


def obis_profile_ids() -> list[str]:
    """Ids of the shipped OBIS profiles, sorted."""
    return sorted(p.stem for p in OBIS_PROFILE_DIR.glob("*.yaml"))


@lru_cache(maxsize=64)
def get_obis_profile(profile_id: str) -> ObisProfile:
    """The shipped OBIS profile ``profile_id``; :class:`ProfileError` naming the known ones otherwise."""
    path = OBIS_PROFILE_DIR / f"{profile_id}.yaml"
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", profile_id) or not path.is_file():
        known = ", ".join(obis_profile_ids())
        raise ProfileError([f"unknown OBIS profile {profile_id!r}; known OBIS profiles: {known}"])
    return parse_obis_profile(path.read_text(encoding="utf-8"), str(path))
