"""The site file's ``energy:`` section (typed; unknown keys are errors) and the virtual-circuit formula syntax.

Example::

    energy:
      demand: {interval: 15, method: sliding, subintervals: 3}
      tariffs:
        standing_charge: 0.45          # per day, site currency
        demand_charge: 8.5             # per kW of the month's maximum demand
        rates:
          - {id: peak, price: 0.34}
          - {id: offpeak, price: 0.22}
        seasons:
          - start: "01-01"
            weekday: [{from: "00:00", rate: offpeak}, {from: "07:00", rate: peak}, {from: "20:00", rate: offpeak}]
            weekend: [{from: "00:00", rate: offpeak}]
        holidays: ["12-25", "12-26", "2026-04-06"]   # MM-DD every year, or one date
        effective_from: "2026-07-01"   # when this tariff took effect (a date: local midnight)
      tariff_history:                  # the tariffs before it, oldest first (kept by PUT /config/tariffs)
        - {from: null, tariffs: {rates: [{id: flat, price: 0.28}]}}   # null: since ever
      co2: {factor: 0.38}              # kg/kWh, or {file: co2.csv} with timestamp,factor rows
      billing: {day: 28, hour: 23}
      virtual:
        - {id: unmetered, formula: "main - lighting - hvac"}
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from meterhub.config.effective import HistoryError, Start, effective_text, effective_time, ordered_starts
from meterhub.config.types import NoBool, StrictModel
from meterhub.errors import ConfigurationError
from meterhub.model.quantities import CATALOGUE, Kind, Q

__all__ = [
    "Band",
    "BillingSettings",
    "Co2Period",
    "Co2Settings",
    "DemandSettings",
    "EnergyConfig",
    "FormulaError",
    "HistoryError",
    "MeterChangeSpec",
    "ProfileSpec",
    "Rate",
    "RegisterSpec",
    "Season",
    "TariffPeriod",
    "TariffSettings",
    "TariffSwitch",
    "VirtualCircuit",
    "co2_periods",
    "effective_time",
    "parse_formula",
    "tariff_periods",
]

_HHMM = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
_MMDD = re.compile(r"^(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$")
_ID = r"^[a-z0-9][a-z0-9_.-]{0,63}$"


# Whitespace before a sign is taken by the first \s* only, so a long run of blanks costs linear time.
_TOKEN = re.compile(r"\s*(?:([+-])\s*)?([a-z0-9][a-z0-9_.-]{0,63})\s*")
#: Demand and load-profile intervals of seed 002 [min].
#: Largest register value a site file may name: 10¹⁵ Wh = 1 PWh, beyond any meter's display.
MAX_REGISTER = 1e15
IntervalMinutes = Annotated[Literal[1, 5, 10, 15, 30, 60], NoBool]


class FormulaError(ConfigurationError, ValueError):
    """A virtual-circuit formula that cannot be read (a ValueError too, so a schema validator reports it
    at the formula's line)."""


def parse_formula(text: str) -> list[tuple[int, str]]:
    """``"main - a - b"`` → ``[(+1, "main"), (-1, "a"), (-1, "b")]``.

    Circuit ids are lower-case like every id in the site file; only ``+`` and ``-`` are allowed.
    """
    out: list[tuple[int, str]] = []
    pos = 0
    text = text.strip()
    if not text:
        raise FormulaError("the formula is empty; write e.g. 'main - lighting - hvac'")
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos or (out and m.group(1) is None):
            shown = text if len(text) <= 80 else text[:77] + "…"
            raise FormulaError(
                f"cannot read the formula {shown!r} at character {pos + 1}: "
                "write circuit ids joined by + and -, e.g. 'main - lighting - hvac'"
            )
        out.append((-1 if m.group(1) == "-" else 1, m.group(2)))
        pos = m.end()
    return out


def _minutes(value: Any) -> Any:
    """``"7:30"`` → "07:30". The site file is YAML 1.2, so an unquoted 07:30 is already text (YAML 1.1
    read it as the base-60 integer 450); a number here is a mistake, not minutes."""
    if isinstance(value, str):
        m = _HHMM.match(value.strip())
        if not m:
            raise ValueError(f'time of day {value!r} is not of the form "HH:MM" (00:00 … 23:59)')
        return f"{int(m.group(1)):02d}:{m.group(2)}"
    raise ValueError(f'time of day {value!r} is not of the form "HH:MM"')


class DemandSettings(StrictModel):
    """Demand measurement (seed 002: interval 1–60 min, sliding number configurable)."""

    interval: IntervalMinutes = Field(default=15, description="demand interval [min]")
    method: Literal["block", "sliding", "thermal"] = "block"
    subintervals: int = Field(default=1, ge=1, le=60, description="sliding: subintervals per interval")
    quantities: list[str] = Field(
        # seed 002 Appendix 3: active and reactive import/export maximum demand; apparent for the
        # predicted S beside predicted P and Q
        default_factory=lambda: [
            Q.ENERGY_ACTIVE_IMPORT.value,
            Q.ENERGY_ACTIVE_EXPORT.value,
            Q.ENERGY_REACTIVE_IMPORT.value,
            Q.ENERGY_REACTIVE_EXPORT.value,
            Q.ENERGY_APPARENT.value,
        ],
        description="registers whose demand is measured",
    )

    @model_validator(mode="after")
    def _sliding(self) -> DemandSettings:
        if self.method == "sliding" and (self.interval * 60) % self.subintervals:
            raise ValueError(
                f"a {self.interval}-min interval cannot be split into {self.subintervals} whole-second subintervals"
            )
        return self

    @field_validator("quantities")
    @classmethod
    def _registers(cls, v: list[str]) -> list[str]:
        with_demand = sorted(k for k, e in CATALOGUE.items() if e.kind is Kind.CUMULATIVE and e.demand)
        for q in v:
            if q not in CATALOGUE or CATALOGUE[q].kind is not Kind.CUMULATIVE:
                regs = sorted(k for k, e in CATALOGUE.items() if e.kind is Kind.CUMULATIVE)
                raise ValueError(f"{q!r} is not a cumulative register; known: {', '.join(regs)}")
            if not CATALOGUE[q].demand:
                # measured but never shown or stored would be a silent no-op: refuse it
                raise ValueError(
                    f"{q!r} has no demand quantity; demand is measured for: {', '.join(with_demand)}"
                )
        return v


class Rate(StrictModel):
    """One time-of-use tariff rate (register 1…5 in OBIS value group E, in the order listed)."""

    id: str = Field(pattern=_ID)
    name: str = ""
    price: float = Field(default=0.0, ge=0, le=1e6, description="energy price [currency/kWh]")
    export_price: float = Field(default=0.0, ge=0, le=1e6, description="feed-in price [currency/kWh]")


class Band(StrictModel):
    """From ``from`` (local time of day) until the next band's start, ``rate`` applies."""

    start: str = Field(alias="from")
    rate: str

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    @field_validator("start", mode="before")
    @classmethod
    def _norm(cls, v: Any) -> Any:
        return _minutes(v)

    @property
    def minute(self) -> int:
        """Minute of the day [min]."""
        h, m = self.start.split(":")
        return int(h) * 60 + int(m)


class Season(StrictModel):
    """Bands per day type from ``start`` (MM-DD) until the next season's start (cyclic over the year)."""

    name: str = ""
    start: str = "01-01"
    weekday: list[Band] = Field(min_length=1)
    saturday: list[Band] | None = None  # default: the weekend bands
    weekend: list[Band] | None = None  # default: the weekday bands
    holiday: list[Band] | None = None  # default: the Sunday (weekend) bands

    @field_validator("start")
    @classmethod
    def _mmdd(cls, v: str) -> str:
        if not _MMDD.match(v):
            raise ValueError(f'season start {v!r} is not of the form "MM-DD"')
        return v


class TariffSwitch(StrictModel):
    """A tariff chosen by a digital input (dual-tariff meter, seed 003 'trf' mode)."""

    input: str = Field(description="circuit / point id whose digital_input series switches the tariff")
    closed: str = Field(description="rate while the contact is closed (1)")
    open: str = Field(description="rate while the contact is open (0)")


class TariffSettings(StrictModel):
    """Up to 5 time-of-use rates, chosen by a seasonal schedule or by a digital input."""

    currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$", description="default: site currency")
    standing_charge: float = Field(default=0.0, ge=0, le=1e9, description="[currency/day]")
    demand_charge: float = Field(
        default=0.0, ge=0, le=1e9, description="[currency/kW] of the monthly maximum demand"
    )
    rates: list[Rate] = Field(default_factory=list, max_length=5)
    seasons: list[Season] = Field(default_factory=list)
    holidays: list[str] = Field(
        default_factory=list, description="public holidays: YYYY-MM-DD, or MM-DD for every year"
    )
    switch: TariffSwitch | None = None
    effective_from: str | None = Field(
        default=None,
        description="when this tariff took effect: a date (local midnight) or a date-time with a UTC offset; "
        "none: since ever. Earlier tariffs are in energy.tariff_history.",
    )

    @field_validator("effective_from", mode="before")
    @classmethod
    def _from(cls, v: Any) -> Any:
        return effective_text(v)

    @field_validator("holidays", mode="before")
    @classmethod
    def _dates(cls, v: Any) -> Any:
        if not isinstance(v, list):
            return v
        out = []
        for item in v:
            if not isinstance(item, str | date):
                raise ValueError(f"holiday {item!r} is neither YYYY-MM-DD nor MM-DD (every year); quote it")
            text = item.isoformat() if isinstance(item, date) else item.strip()
            if _MMDD.match(text):
                out.append(text)
                continue
            try:
                out.append(date.fromisoformat(text).isoformat())
            except ValueError:
                raise ValueError(f"holiday {item!r} is neither YYYY-MM-DD nor MM-DD (every year)") from None
        return out

    @model_validator(mode="after")
    def _references(self) -> TariffSettings:
        ids = [r.id for r in self.rates]
        if len(set(ids)) != len(ids):
            raise ValueError("rate ids must be unique")
        if self.rates and not self.seasons and self.switch is None and len(self.rates) > 1:
            raise ValueError("with more than one rate, give 'seasons' (time of use) or a 'switch' input")
        if self.seasons and self.switch is not None:
            raise ValueError("choose either 'seasons' (time of use) or 'switch' (digital input), not both")
        known = set(ids)
        used: list[str] = []
        for s in self.seasons:
            for bands in (s.weekday, s.saturday, s.weekend, s.holiday):
                used += [b.rate for b in bands or ()]
        if self.switch is not None:
            used += [self.switch.closed, self.switch.open]
        for r in used:
            if r not in known:
                raise ValueError(f"unknown rate {r!r}; known rates: {', '.join(ids) or '(none)'}")
        starts = [s.start for s in self.seasons]
        if len(set(starts)) != len(starts):
            raise ValueError("two seasons start on the same day")
        return self


class TariffPeriod(StrictModel):
    """An earlier tariff (``energy.tariff_history``): ``tariffs`` applied from ``from`` until the next entry's
    ``from`` (the last entry: until the current tariff's ``effective_from``). ``from: null`` (only the
    oldest entry) means since ever; energy older than the oldest start is priced with the oldest tariff."""

    start: str | None = Field(default=None, alias="from", description="date or date-time with a UTC offset")
    tariffs: TariffSettings

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    @field_validator("start", mode="before")
    @classmethod
    def _from(cls, v: Any) -> Any:
        return effective_text(v)

    @model_validator(mode="after")
    def _own_start(self) -> TariffPeriod:
        if self.tariffs.effective_from is not None:
            raise ValueError(
                "give the start of a past tariff as the entry's 'from', not tariffs.effective_from"
            )
        return self


def _starts(history: list[TariffPeriod], current: TariffSettings) -> list[Start]:
    """(location, name, start) of each tariff period, oldest first, the current one last."""
    out: list[Start] = [
        (("tariff_history", i, "from"), f"tariff_history[{i}]", p.start) for i, p in enumerate(history)
    ]
    out.append((("tariffs", "effective_from"), "the current tariff", current.effective_from))
    return out


def tariff_periods(
    history: list[TariffPeriod], current: TariffSettings, tz: str | None
) -> list[tuple[float | None, TariffSettings]]:
    """The tariff periods, oldest first: (start [s, UTC] or None for since ever, tariffs); ``tz`` (IANA
    name) places dates at local midnight, None checks only that every period but the oldest has a start.

    Raises :class:`HistoryError` naming the entry when a start is missing or the starts are not
    strictly increasing.
    """
    starts = ordered_starts(_starts(history, current), tz, "tariffs.effective_from", "tariff_history")
    return list(zip(starts, [p.tariffs for p in history] + [current], strict=True))


class Co2Period(StrictModel):
    """An earlier constant CO2 factor (``energy.co2.history``): in force from ``from`` (null: since ever,
    only the oldest entry) until the next entry's start, the last one until ``energy.co2.factor_from``."""

    start: str | None = Field(default=None, alias="from", description="date or date-time with a UTC offset")
    factor: float = Field(ge=0, le=5, description="[kg/kWh]")

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    @field_validator("start", mode="before")
    @classmethod
    def _from(cls, v: Any) -> Any:
        return effective_text(v)


class Co2Settings(StrictModel):
    """CO2 factor of grid energy: a constant or a time series file (``timestamp,factor`` rows).

    The constant is effective-dated like the tariffs: ``factor_from`` says when the present one
    (``factor``, else ``site.co2_factor``) took effect, ``history`` lists the earlier ones, so a new
    factor never changes the CO2 of energy used before it. Where the file has values, they apply."""

    factor: float | None = Field(default=None, ge=0, le=5, description="[kg/kWh]; default: site.co2_factor")
    file: str | None = Field(default=None, description="CSV with ISO timestamp,factor [kg/kWh] rows")
    factor_from: str | None = Field(
        default=None, description="when the present constant factor took effect; none: since ever"
    )
    history: list[Co2Period] = Field(default_factory=list, max_length=1000, description="earlier factors")

    @field_validator("factor_from", mode="before")
    @classmethod
    def _from(cls, v: Any) -> Any:
        return effective_text(v)

    @model_validator(mode="after")
    def _starts_given(self) -> Co2Settings:
        try:
            co2_periods(self, 0.0, None)
        except HistoryError as exc:
            raise ValueError(str(exc)) from None
        return self


def co2_periods(co2: Co2Settings, site_factor: float, tz: str | None) -> list[tuple[float | None, float]]:
    """The constant CO2 factors, oldest first: (start [s, UTC] or None for since ever, factor [kg/kWh]);
    the present one is ``co2.factor``, else ``site_factor``. ``tz`` as for :func:`tariff_periods`."""
    entries: list[Start] = [
        (("history", i, "from"), f"co2.history[{i}]", p.start) for i, p in enumerate(co2.history)
    ]
    entries.append((("factor_from",), "the present factor", co2.factor_from))
    starts = ordered_starts(entries, tz, "co2.factor_from", "co2.history")
    present = co2.factor if co2.factor is not None else site_factor
    return list(zip(starts, [p.factor for p in co2.history] + [present], strict=True))


class BillingSettings(StrictModel):
    """Monthly billing (seed 002 appendix 4: date 1–28, time 00:00–23:00; manual, command, automatic)."""

    day: int = Field(default=1, ge=1, le=28)
    hour: int = Field(default=0, ge=0, le=23)
    automatic: bool = True
    reset_max_demand: bool = True
    history: int = Field(default=24, ge=1, le=240, description="billing periods kept")


class ProfileSpec(StrictModel):
    """A load profile (seed 002 appendix 5): interval and captured quantities of one circuit."""

    circuit: str
    interval: IntervalMinutes = Field(default=15, description="[min]")
    quantities: list[str] = Field(
        default_factory=lambda: [
            Q.ENERGY_ACTIVE_IMPORT.value,
            Q.ENERGY_ACTIVE_EXPORT.value,
            Q.ACTIVE_POWER.value,
        ]
    )

    @field_validator("quantities")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        bad = [q for q in v if q not in CATALOGUE]
        if bad:
            raise ValueError(f"unknown quantity {bad[0]!r} (see meterhub.model.quantities)")
        return v


class VirtualCircuit(StrictModel):
    """A circuit computed from others: ``formula`` is a sum/difference of circuit ids."""

    id: str = Field(pattern=_ID)
    name: str = ""
    formula: str = Field(max_length=8192)
    zone: str | None = None

    @field_validator("formula")
    @classmethod
    def _parse(cls, v: str) -> str:
        parse_formula(v)
        return v


class MeterChangeSpec(StrictModel):
    """An announced meter replacement: the old meter's last and the new meter's first reading."""

    circuit: str
    quantity: str = Q.ENERGY_ACTIVE_IMPORT.value
    phase: Literal["L1", "L2", "L3", "total"] | None = "total"
    time: str = Field(description="ISO 8601 date-time of the change")
    old_final: float = Field(ge=0, le=MAX_REGISTER, description="[unit of the quantity, e.g. Wh]")
    new_initial: float = Field(ge=0, le=MAX_REGISTER, description="[unit of the quantity, e.g. Wh]")


class RegisterSpec(StrictModel):
    """Rollover value of a device's register (e.g. 99999.9 kWh display → modulus 1e8 Wh)."""

    circuit: str
    quantity: str = Q.ENERGY_ACTIVE_IMPORT.value
    phase: Literal["L1", "L2", "L3", "total"] | None = "total"
    modulus: float = Field(gt=0, le=MAX_REGISTER, description="[unit of the quantity, e.g. Wh]")


class EnergyConfig(StrictModel):
    """The ``energy:`` section of a site file."""

    demand: DemandSettings = Field(default_factory=DemandSettings)
    tariffs: TariffSettings = Field(default_factory=TariffSettings)
    tariff_history: list[TariffPeriod] = Field(
        default_factory=list, max_length=1000, description="earlier tariffs, oldest first"
    )
    co2: Co2Settings = Field(default_factory=Co2Settings)
    billing: BillingSettings = Field(default_factory=BillingSettings)
    profiles: list[ProfileSpec] = Field(default_factory=list)
    virtual: list[VirtualCircuit] = Field(default_factory=list)
    meter_changes: list[MeterChangeSpec] = Field(default_factory=list)
    registers: list[RegisterSpec] = Field(default_factory=list)
    gap: float = Field(default=900.0, gt=0, le=86400 * 7, description="longer silences are estimated [s]")
    max_power: float = Field(
        default=1e8, gt=0, le=1e10, description="largest plausible power of a circuit [W]"
    )
    capacity_minimum: float = Field(
        default=0.0, ge=0, le=1e10, description="floor of each monthly peak in the capacity-tariff mean [W]"
    )

    @model_validator(mode="after")
    def _tariff_starts(self) -> EnergyConfig:
        # the order of the starts needs the site's time zone: checked with the site (check_energy_references)
        try:
            tariff_periods(self.tariff_history, self.tariffs, None)
        except HistoryError as exc:
            raise ValueError(str(exc)) from None
        return self
