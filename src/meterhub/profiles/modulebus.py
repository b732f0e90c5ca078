"""The seed-000 module bus table: where a V10 voltage unit shows its bus (data, documented in
``SCHEMA.md``, "Module bus").

Holding registers, uint16: :data:`BUS_TABLE` + 0 the number of modules on the bus (the V10 included),
+ 1 the number of addresses used twice, + 2 the power the modules draw and + 3 the power the V10
supplies [0.01 W]; :data:`MODULE_CODES` + a − 1 the model code of the module at address a (0 = free,
:data:`DUPLICATE_CODE` = two modules at that address). ``meterhub scan`` reads it
(:mod:`meterhub.drivers.modbus.scan`); the simulator serves it (:mod:`meterhub.sim.modbus_modules`).
"""

from __future__ import annotations

__all__ = ["BUS_TABLE", "DUPLICATE_CODE", "MODULE_CODES", "MODULE_SLOTS"]

BUS_TABLE = 0xF100  # module count, duplicates, consumption, supply (holding registers)
MODULE_CODES = 0xF110  # … and the model code at each address
MODULE_SLOTS = 64  # model-code registers the table holds (addresses 1…64)
DUPLICATE_CODE = 0xFFFF  # the model code shown at an address two modules answer to
