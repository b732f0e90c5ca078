"""The current sensor of a circuit (``circuits[].ct``): kind, ratio and calibration table.

A calibration table lists, at primary currents, the CT's phase error (secondary leads, degrees) and
ratio error (percent, positive = reads high), IoTaWatt style. Between points the errors are interpolated
linearly and held outside (:class:`meterhub.metering.sensors.PhaseTable`). Example::

    ct: {kind: current-output, ratio: 100/0.05, burden: 10,
         table: [{current: 1, phase: 2.0, ratio: 1.0}, {current: 20, phase: 0.6}, {current: 100, phase: 0.2}]}

A ratio change is effective-dated: ``ratio_from`` says when the present ratio took effect and
``ratio_history`` lists the earlier ones with their starts (``PATCH /circuits/{id}`` records both). Stored
readings are never rescaled: what was read before a change keeps the ratio it was read with, and a
register of a device that reports secondary values continues across the change instead of being
multiplied anew (:mod:`meterhub.energy.ratio_changes`)::

    ct: {kind: adapter-5a, ratio: 800/5, ratio_from: "2026-11-02T09:30:00+01:00",
         ratio_history: [{from: null, ratio: 400/5}]}
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, ConfigDict, Field, field_validator, model_validator

from meterhub.config.effective import effective_text
from meterhub.config.types import LAX, Ratio, StrictModel

__all__ = ["CTCalibrationPoint", "CTKind", "CTRatioPeriod", "CTSpec", "CTTable"]


class CTKind(StrEnum):
    """Current sensor kinds (seed 000 §4.6, seed 001 meter setup)."""

    CURRENT_OUTPUT = "current-output"  # mA secondary into a burden resistor
    VOLTAGE_OUTPUT = "voltage-output"  # 333 mV at rated primary current
    ROGOWSKI = "rogowski"  # di/dt coil, integrated
    ADAPTER_5A = "adapter-5a"  # a 5 A (or 1 A) adapter behind a primary CT, e.g. 800/5
    BUILT_IN = "built-in"  # CT inside the module (M10…M40)
    DIRECT = "direct"  # direct connection, no CT


class CTCalibrationPoint(StrictModel):
    """One calibration point: primary current [A], phase error [°], ratio error [%]."""

    current: float = Field(gt=0, le=1e6, description="primary current [A]")
    phase: float = Field(ge=-10, le=10, description="phase error, secondary leading [°]")
    ratio: float = Field(default=0.0, ge=-20, le=20, description="ratio error [%]")


def _increasing(points: list[CTCalibrationPoint]) -> list[CTCalibrationPoint]:
    if not points:
        raise ValueError("a CT table needs at least one point")
    for a, b in zip(points, points[1:], strict=False):
        if b.current <= a.current:
            raise ValueError(
                f"CT table currents must increase ({a.current:g} A is followed by {b.current:g} A)"
            )
    return points


#: A list of calibration points with strictly increasing currents.
CTTable = Annotated[list[CTCalibrationPoint], AfterValidator(_increasing)]


class CTRatioPeriod(StrictModel):
    """An earlier CT ratio: in force from ``from`` (null: since installation, only the oldest entry) until
    the next entry's start, the last one until the CT's ``ratio_from``."""

    start: str | None = Field(default=None, alias="from", description="date-time with a UTC offset")
    ratio: Ratio

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    @field_validator("start", mode="before")
    @classmethod
    def _from(cls, v: Any) -> Any:
        return effective_text(v, dates=False)


class CTSpec(StrictModel):
    """The current sensor of a circuit."""

    kind: Annotated[CTKind, LAX] = CTKind.BUILT_IN
    ratio: Ratio = Field(default_factory=lambda: Ratio(primary=1, secondary=1))
    burden: float | None = Field(
        default=None, gt=0, le=1e6, description="burden resistor [Ω] (current-output)"
    )
    rated_current: float | None = Field(default=None, gt=0, le=1e6, description="rated primary current [A]")
    phase_error: float = Field(default=0.0, ge=-10, le=10, description="phase error at rated current [°]")
    table: CTTable | None = Field(default=None, description="phase/ratio error against current")
    ratio_from: str | None = Field(
        default=None, description="when the present ratio took effect (date-time with a UTC offset)"
    )
    ratio_history: list[CTRatioPeriod] = Field(
        default_factory=list, max_length=1000, description="earlier ratios, oldest first"
    )

    @field_validator("ratio_from", mode="before")
    @classmethod
    def _ratio_from(cls, v: Any) -> Any:
        return effective_text(v, dates=False)

    @model_validator(mode="after")
    def _ratio_periods(self) -> CTSpec:
        starts = [(f"ratio_history[{i}]", p.start) for i, p in enumerate(self.ratio_history)]
        starts.append(("ratio_from", self.ratio_from))
        last: tuple[str, str, float] | None = None
        for i, (name, start) in enumerate(starts):
            if start is None:
                if i > 0:
                    raise ValueError(
                        f"{name} has no start; only the oldest ratio may apply since installation (from: null)"
                    )
                continue
            ts = datetime.fromisoformat(start).timestamp()
            if last is not None and ts <= last[2]:
                raise ValueError(
                    f"{name} {start} is not after {last[0]} {last[1]}; ratios follow each other, oldest first"
                )
            last = (name, start, ts)
        return self

    def ratio_at(self, ts: float) -> Ratio:
        """The ratio in force at ``ts`` [s, UTC] (before the oldest recorded start: the oldest ratio)."""
        periods = [(p.start, p.ratio) for p in self.ratio_history] + [(self.ratio_from, self.ratio)]
        chosen = periods[0][1]
        for start, ratio in periods:
            if start is None or datetime.fromisoformat(start).timestamp() <= ts:
                chosen = ratio
        return chosen
