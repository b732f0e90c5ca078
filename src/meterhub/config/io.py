"""The ``io:`` section of the site file: typed configuration of IO points: pulse (S0) inputs, digital inputs, relay and analog outputs,
analog inputs and DS18B20 1-wire probes.

Where it lives in the site file
-------------------------------
IO points are an ``io:`` section of the site file, next to ``circuits:``. Each point names the
device that carries it (a DIO-4/2 or AIO-2/2 module, a pulse concentrator, or the local 1-wire
master on a bus of kind ``io``) and, for module inputs/outputs, its 1-based channel. A point id is
used as the ``circuit`` of its readings, so point ids must not clash with circuit ids. With devices
``conc1`` (``pulse-concentrator-7``), ``dio1`` (``enertrek-dio-4-2``), ``aio1`` (``enertrek-aio-2-2``)
on a Modbus bus and ``w1`` (profile ``linux-w1``) on a bus of kind ``io``::

    io:
      w1_root: /sys/bus/w1/devices          # Linux 1-wire sysfs (injectable for tests)
      points:
        - {id: gas-main, kind: pulse, device: conc1, channel: 1, medium: gas, unit: m3, weight: 0.01}
        - {id: pv-meter, kind: pulse, device: conc1, channel: 2, medium: electricity, unit: Wh,
           weight: 1, contact: NC}
        - {id: mcb-q1, kind: digital, device: dio1, channel: 1, function: breaker-sd}
        - {id: fan, kind: relay, device: dio1, channel: 1, mode: latched}
        - {id: tank, kind: analog-in, device: aio1, channel: 1, signal: 4-20mA, range: [0, 10],
           unit: bar}
        - {id: boiler, kind: temperature, device: w1, sensor: 28-0316a2795bff}

The schema validates the section's shape (errors come back as ``file:line: io.points[2].weight: …``);
:func:`meterhub.drivers.io.config.check_io`, one of :data:`meterhub.checks.SITE_CHECKS`, checks each point
against its device, bus and profile.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, ConfigDict, Field, field_validator, model_validator

from meterhub.config.types import LAX, Identifier, NoBool, StrictModel

__all__ = [
    "DEFAULT_W1_ROOT",
    "AnalogInPoint",
    "AnalogOutPoint",
    "AnalogSignal",
    "Contact",
    "DigitalFunction",
    "DigitalPoint",
    "IOPoint",
    "IOSection",
    "Medium",
    "PulsePoint",
    "PulseUnit",
    "RelayMode",
    "RelayPoint",
    "TemperaturePoint",
]

#: Where the Linux w1 subsystem lists slave devices (Documentation/w1/w1-generic.rst).
DEFAULT_W1_ROOT = "/sys/bus/w1/devices"

Channel = Annotated[int, Field(ge=1, le=64, description="1-based input/output number on the device")]


class _Strict(StrictModel):
    model_config = ConfigDict(frozen=True)


def _pair(value: Any) -> Any:
    # YAML has no tuples: a two-element list is the pair (strict validation would refuse the list).
    return tuple(value) if isinstance(value, list) else value


class Contact(StrEnum):
    """Contact type of an input (seed 003 concentrator "contact type (NO, NC)")."""

    NO = "NO"  # normally open: a closed contact is the active state (a pulse, an alarm)
    NC = "NC"  # normally closed: an open contact is the active state


class Medium(StrEnum):
    """What a pulse meter measures (seed 003: electricity, gas, water, oil meters)."""

    ELECTRICITY = "electricity"
    GAS = "gas"
    WATER = "water"
    OIL = "oil"


class PulseUnit(StrEnum):
    """Unit of the pulse weight (seed 003 "unit (kWh, m³, etc)")."""

    KWH = "kWh"
    WH = "Wh"
    M3 = "m3"
    L = "l"


class DigitalFunction(StrEnum):
    """What a digital input reports (seed 000 §3.4.5 DIO-4/2, seed 004 digital inputs)."""

    BREAKER_OF = "breaker-of"  # OF auxiliary contact: follows the main contacts (active = closed)
    BREAKER_SD = "breaker-sd"  # SD trip-indication contact: active = tripped on a fault
    DOOR = "door"  # door / tamper switch: active = open
    RUN = "run"  # equipment run feedback: active = running
    FAULT = "fault"  # equipment fault contact: active = fault
    GENERIC = "generic"  # active = on


class RelayMode(StrEnum):
    LATCHED = "latched"  # stays in the commanded state
    PULSE = "pulse"  # energised for ``pulse_duration`` then released (e.g. a breaker shunt trip)


class AnalogSignal(StrEnum):
    """Electrical range of an analog input or output (seed 000 AIO-2/2, seed 004 0–30 V input)."""

    MA_4_20 = "4-20mA"
    MA_0_20 = "0-20mA"
    V_0_10 = "0-10V"
    V_0_30 = "0-30V"


#: Catalogue quantity of the register a pulse input drives, per medium.
_UNITS_OF_MEDIUM: dict[Medium, tuple[PulseUnit, ...]] = {
    Medium.ELECTRICITY: (PulseUnit.KWH, PulseUnit.WH),
    Medium.GAS: (PulseUnit.M3, PulseUnit.L),
    Medium.WATER: (PulseUnit.M3, PulseUnit.L),
    Medium.OIL: (PulseUnit.M3, PulseUnit.L),
}


class _Point(_Strict):
    id: Identifier
    name: str = ""
    device: Identifier


class PulsePoint(_Point):
    """An S0 pulse input (IEC 62053-31) counting the pulses of an electricity, gas, water or oil meter."""

    kind: Literal["pulse"]
    channel: Channel
    medium: Annotated[Medium, LAX] = Medium.ELECTRICITY
    unit: Annotated[PulseUnit, LAX] = PulseUnit.KWH
    weight: float = Field(gt=0, le=1e6, description="meter quantity per pulse [unit/pulse]")
    contact: Annotated[Contact, LAX] = Field(
        default=Contact.NO,
        description="for edge counting; a concentrator or DIO module counts with its own NO/NC setting",
    )
    debounce: float = Field(
        default=0.1, ge=0.1, le=10, description="minimum pulse and gap duration [s] (seed 001: 100 ms)"
    )
    counter_bits: Annotated[Literal[16, 32, 64], NoBool] = Field(
        default=32, description="width of the device's pulse counter register, for wrap-around [bit]"
    )
    initial: float = Field(default=0.0, ge=0, le=1e15, description="meter index when counting started [unit]")
    rate_timeout: float = Field(
        default=3600.0, gt=0, le=86400, description="no pulse for this long means zero rate [s]"
    )

    @field_validator("unit", mode="before")
    @classmethod
    def _unit_alias(cls, v: Any) -> Any:
        aliases = {"m³": "m3", "L": "l", "kwh": "kWh", "wh": "Wh"}
        return aliases.get(v, v) if isinstance(v, str) else v

    @model_validator(mode="after")
    def _unit_fits_medium(self) -> PulsePoint:
        allowed = _UNITS_OF_MEDIUM[self.medium]
        if self.unit not in allowed:
            names = " or ".join(u.value for u in allowed)
            raise ValueError(f"a {self.medium.value} pulse meter counts in {names}, not {self.unit.value}")
        return self


class DigitalPoint(_Point):
    """A dry-contact digital input (seed 000 DIO-4/2: breaker OF/SD or equipment status)."""

    kind: Literal["digital"]
    channel: Channel
    function: Annotated[DigitalFunction, LAX] = DigitalFunction.GENERIC
    contact: Annotated[Contact, LAX] = Contact.NO
    debounce: float = Field(default=0.0, ge=0, le=60, description="a new state must hold this long [s]")


class RelayPoint(_Point):
    """A relay output (seed 000 DIO-4/2: two passive relay outputs, 48 VDC/50 mA)."""

    kind: Literal["relay"]
    channel: Channel
    mode: Annotated[RelayMode, LAX] = RelayMode.LATCHED
    pulse_duration: float = Field(default=1.0, gt=0, le=3600, description="on-time in pulse mode [s]")
    inverted: bool = Field(default=False, description="coil value 0 means energised (fail-safe wiring)")


class _Analog(_Point):
    channel: Channel
    signal: Annotated[AnalogSignal, LAX] = AnalogSignal.MA_4_20
    range: Annotated[tuple[float, float], BeforeValidator(_pair)] = Field(
        description="engineering value at the low and high signal end"
    )
    unit: str = Field(default="", max_length=16, description="engineering unit shown to people, e.g. bar")

    @model_validator(mode="after")
    def _span(self) -> _Analog:
        if self.range[0] == self.range[1]:
            raise ValueError("range must span a non-zero interval, e.g. [0, 10]")
        return self


class AnalogInPoint(_Analog):
    """An analog input scaled to engineering units (seed 000 AIO-2/2, seed 004 0–30 V input)."""

    kind: Literal["analog-in"]
    clamp: bool = Field(default=True, description="clip to the range inside the signal tolerance")


class AnalogOutPoint(_Analog):
    """An analog output driven from an engineering value (seed 000 AIO-2/2 4–20 mA / 0–10 V)."""

    kind: Literal["analog-out"]


class TemperaturePoint(_Point):
    """A DS18B20 (or DS18S20/DS1822) probe on the Linux 1-wire bus, found by its unique id."""

    kind: Literal["temperature"]
    sensor: str = Field(
        pattern=r"^(10|22|28|3b)-[0-9a-f]{12}$",
        description="w1 slave name: family code '28' (DS18B20) '-' 48-bit serial in hex",
    )
    offset: float = Field(default=0.0, ge=-10, le=10, description="calibration offset added [K]")
    poll_interval: float | None = Field(
        default=None, gt=0, le=86400, description="[s]; default: the device's poll_interval"
    )


IOPoint = Annotated[
    PulsePoint | DigitalPoint | RelayPoint | AnalogInPoint | AnalogOutPoint | TemperaturePoint,
    Field(discriminator="kind"),
]


class IOSection(_Strict):
    """The ``io:`` section of a site file."""

    w1_root: str = Field(
        default=DEFAULT_W1_ROOT,
        description="Linux 1-wire sysfs devices folder; a relative path is inside the data folder",
    )
    points: list[IOPoint] = Field(default_factory=list)

    def w1_folder(self, data_dir: Path | None) -> Path:
        """``w1_root`` as a path: absolute as given, relative ones inside ``data_dir`` (a simulated bus
        in the demo's data folder), or the current folder when there is none."""
        root = Path(self.w1_root)
        return root if root.is_absolute() or data_dir is None else Path(data_dir) / root

    def on_device(self, device_id: str) -> list[IOPoint]:
        return [p for p in self.points if p.device == device_id]
