"""Typed site-file model of a CT calibration table (``circuits[].ct.table``), IoTaWatt style.

Each point gives, at a primary current, the CT's phase error (secondary leads, degrees) and ratio
error (percent, positive = reads high). Between points the errors are interpolated linearly and held
outside (:class:`meterhub.metering.sensors.PhaseTable`). Example::

    ct: {kind: current-output, ratio: 100/0.05, burden: 10,
         table: [{current: 1, phase: 2.0, ratio: 1.0}, {current: 20, phase: 0.6}, {current: 100, phase: 0.2}]}
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

__all__ = ["CTCalibrationPoint", "CTTable"]


class CTCalibrationPoint(BaseModel):
    """One calibration point: primary current [A], phase error [°], ratio error [%]."""

    model_config = ConfigDict(extra="forbid")

    current: float = Field(gt=0, description="primary current [A]")
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
