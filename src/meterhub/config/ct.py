"""The current sensor of a circuit (``circuits[].ct``): kind, ratio and calibration table.

A calibration table lists, at primary currents, the CT's phase error (secondary leads, degrees) and
ratio error (percent, positive = reads high), IoTaWatt style. Between points the errors are interpolated
linearly and held outside (:class:`meterhub.metering.sensors.PhaseTable`). Example::

    ct: {kind: current-output, ratio: 100/0.05, burden: 10,
         table: [{current: 1, phase: 2.0, ratio: 1.0}, {current: 20, phase: 0.6}, {current: 100, phase: 0.2}]}
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, Field

from meterhub.config.types import LAX, Ratio, StrictModel

__all__ = ["CTCalibrationPoint", "CTKind", "CTSpec", "CTTable"]


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
