"""IO inputs and outputs: S0 pulse counters, digital inputs, relay and analog outputs, analog inputs,
DS18B20 1-wire probes (issue 4 "Inputs").

Modules: :mod:`.config` (the ``io:`` section of a site file), :mod:`.pulse`, :mod:`.digital`,
:mod:`.analog`, :mod:`.relay` (pure, clock-injected semantics), :mod:`.processor` (raw Modbus module
values → point readings), :mod:`.state` (persisted pulse totals), :mod:`.onewire` (Linux sysfs
probes), :mod:`.source` (the ``io`` bus), :mod:`.control` (drive outputs of a running gateway by
point id), :mod:`.errors` (the exceptions). The simulator of the ``io`` bus and of IO modules is
:mod:`meterhub.sim.io` (drivers do not import simulators).

Importing this package registers the cross-check of the ``io`` section with the site loader, and the
source for buses of kind ``io``. Modbus IO modules are read by the Modbus source, which calls
:class:`.processor.IODevice` for the points' meaning.
"""

from __future__ import annotations

from meterhub.drivers.io import source as _source  # noqa: F401  (registers the io bus source)
from meterhub.drivers.io.config import IOSection, check_io, io_section
from meterhub.drivers.io.control import OutputControl
from meterhub.drivers.io.processor import IODevice, IOResult, io_devices, output_target

__all__ = [
    "IODevice",
    "IOResult",
    "IOSection",
    "OutputControl",
    "check_io",
    "io_devices",
    "io_section",
    "output_target",
]
