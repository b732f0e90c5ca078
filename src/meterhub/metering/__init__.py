"""meterhub.metering — the waveform metering engine (issue 3): pure numpy, no I/O.

Sampled voltages and currents → synchronised 10/12-cycle windows (IEC 61000-4-30) → RMS, IEEE 1459
powers, IEC 61000-4-7 harmonics, unbalance, Urms(½) events, four-quadrant energy; aggregation to
150/180-cycle, 1-min and 10-min values; CT/VT sensor models; record readers for CSV, NPZ, COMTRADE.

Modules: :mod:`.sync` (zero crossings, windows), :mod:`.windows` (per-window measurement),
:mod:`.leakage` (DFT leakage of the fundamental and strong harmonics removed),
:mod:`.harmonics`, :mod:`.power`, :mod:`.sequence`, :mod:`.events`, :mod:`.energy`, :mod:`.sensors`,
:mod:`.ct_table` (site-file CT calibration tables), :mod:`.aggregation`, :mod:`.engine` (the streaming
:class:`Analyzer`), :mod:`.readers` and :mod:`.record` (``meterhub analyze``).

The engine names are exported lazily so that the site schema can import :mod:`.ct_table` without
importing the engine (which imports the schema).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from meterhub.metering.engine import Analyzer, Batch, CircuitSpec, EngineConfig, VoltageInput

__all__ = ["Analyzer", "Batch", "CircuitSpec", "EngineConfig", "VoltageInput"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        # lazy: the engine (numpy FFTs, filters) loads on first use, not for the config and CT tables
        from meterhub.metering import engine

        return getattr(engine, name)
    raise AttributeError(f"module 'meterhub.metering' has no attribute {name!r}")
