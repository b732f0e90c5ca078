"""CT calibration tables of the site file (``circuits[].ct.table``).

The typed model lives in :mod:`meterhub.config.ct` (the schema is a leaf); it is re-exported here for the
metering code. :class:`meterhub.metering.sensors.PhaseTable` is what the engine interpolates.
"""

from __future__ import annotations

from meterhub.config.ct import CTCalibrationPoint, CTTable

__all__ = ["CTCalibrationPoint", "CTTable"]
