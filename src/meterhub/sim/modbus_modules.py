"""The seed-000 module bus: one voltage unit (V10) and its cascaded modules, simulated.

Behaviour from the Enertrek manual (seed 000):

* **automatic address allocation** (§9): the V10 is address 1; a module plugged in without an address
  gets the lowest free one (2, 3, …); an unplugged module's address is freed ("shielded");
* **duplicate addresses** (§8.1.1, §9): two modules set to the same address both answer, so their
  frames collide — the simulator answers such requests with a corrupted frame (bad CRC on RTU, a
  truncated frame on TCP), which the master sees as a CRC error. :meth:`ModuleBus.reallocate` does
  what the V10 does on detection: gives every duplicate but the first a free address;
* **power budget** (§7.2): :meth:`ModuleBus.power` sums the modules' consumption against the V10's
  15 W; :meth:`ModuleBus.add` refuses a module that would exceed it (the site check is in
  :mod:`meterhub.drivers.modbus.budget`);
* **bus table** (meterhub map, ``SCHEMA.md``): the V10 shows the bus in holding registers — 0xF100
  module count, 0xF101 duplicate-address count, 0xF102 consumption and 0xF103 supply [0.01 W],
  0xF110 + a − 1 the model code at address a (0xFFFF = duplicate) — so ``meterhub scan`` can report it
  (the map is data: :mod:`meterhub.profiles.modulebus`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from meterhub.profiles.modulebus import BUS_TABLE, DUPLICATE_CODE, MODULE_CODES
from meterhub.profiles.schema import Function, ProfileKind
from meterhub.sim.modbus_device import ProfileDevice

__all__ = ["BUS_TABLE", "BusFullError", "ModuleBus"]

MAX_ADDRESS = 247


class BusFullError(ValueError):
    """A module that cannot be added (no free address, power budget, circuit count)."""


def _model_code(dev: ProfileDevice) -> int:
    for e in dev.profile.identification:
        if e.name == "model" and e.value is not None:
            return int(e.value)
    return 0


@dataclass
class ModuleBus:
    """Modules by address; more than one at an address is a duplicate (collision)."""

    voltage_unit: ProfileDevice
    slots: dict[int, list[ProfileDevice]] = field(default_factory=dict)
    max_circuits: int = 20

    def __post_init__(self) -> None:
        if self.voltage_unit.profile.kind is not ProfileKind.VOLTAGE_UNIT:
            raise ValueError(f"{self.voltage_unit.profile.id} is not a voltage unit")
        self.slots.setdefault(1, []).insert(0, self.voltage_unit)
        self.voltage_unit.extra = self._bus_table

    # -- the SimBusContext device table interface ---------------------------------------------
    def get(self, unit: int) -> ProfileDevice | None:
        devs = self.slots.get(unit)
        return devs[0] if devs else None

    def collided(self, unit: int) -> bool:
        return len(self.slots.get(unit, ())) > 1

    def units(self) -> list[int]:
        return sorted(u for u, d in self.slots.items() if d)

    # -- topology -----------------------------------------------------------------------------
    def modules(self) -> list[ProfileDevice]:
        return [d for devs in self.slots.values() for d in devs]

    def address_of(self, device_id: str) -> int | None:
        for a, devs in self.slots.items():
            if any(d.device_id == device_id for d in devs):
                return a
        return None

    def power(self) -> tuple[float, float]:
        """(provided, consumed) on the bus. [W]"""
        provided = consumed = 0.0
        for d in self.modules():
            if d.profile.bus_power is not None:
                provided += d.profile.bus_power.provided
                consumed += d.profile.bus_power.consumption
        return provided, consumed

    def circuits(self) -> int:
        return sum(d.profile.channels for d in self.modules() if d.profile.kind is ProfileKind.CURRENT_MODULE)

    def free_address(self) -> int:
        for a in range(2, MAX_ADDRESS + 1):
            if not self.slots.get(a):
                return a
        raise BusFullError("no free address on the module bus")

    def add(self, dev: ProfileDevice, address: int | None = None, *, check: bool = True) -> int:
        """Plug a module in; ``address=None`` allocates one (§9). Returns its address.

        ``check=False`` skips the power and circuit limits (a site file that breaks them is still
        simulated; ``check-config`` reports it).
        """
        provided, consumed = self.power()
        need = dev.profile.bus_power.consumption if dev.profile.bus_power else 0.0
        if check and consumed + need > provided + 1e-9:
            raise BusFullError(
                f"{dev.device_id} ({dev.profile.id}) would draw {consumed + need:.2f} W > {provided:.2f} W "
                "supplied (seed 000 §7.2)"
            )
        too_many = self.circuits() + dev.profile.channels > self.max_circuits
        if check and dev.profile.kind is ProfileKind.CURRENT_MODULE and too_many:
            raise BusFullError(f"more than {self.max_circuits} current circuits on one voltage unit")
        a = self.free_address() if address is None else address
        if not 1 <= a <= MAX_ADDRESS:
            raise BusFullError(f"address {a} is outside 1…{MAX_ADDRESS}")
        self.slots.setdefault(a, []).append(dev)
        return a

    def remove(self, device_id: str) -> int | None:
        """Unplug a module; its address is freed. Returns the address it had."""
        for a, devs in self.slots.items():
            for d in devs:
                if d.device_id == device_id and d is not self.voltage_unit:
                    devs.remove(d)
                    return a
        return None

    def duplicates(self) -> dict[int, list[str]]:
        return {a: [d.device_id for d in devs] for a, devs in self.slots.items() if len(devs) > 1}

    def reallocate(self) -> dict[str, tuple[int, int]]:
        """Resolve duplicates as the V10 does (§9): all but the first module at an address move."""
        moved: dict[str, tuple[int, int]] = {}
        for a in sorted(self.duplicates()):
            devs = self.slots[a]
            for d in devs[1:]:
                devs.remove(d)
                new = self.free_address()
                self.slots.setdefault(new, []).append(d)
                moved[d.device_id] = (a, new)
        return moved

    # -- V10 bus table ------------------------------------------------------------------------
    def _bus_table(self, function: Function, address: int) -> int | None:
        if function is not Function.HOLDING:
            return None
        provided, consumed = self.power()
        if address == BUS_TABLE:
            return len(self.modules())
        if address == BUS_TABLE + 1:
            return len(self.duplicates())
        if address == BUS_TABLE + 2:
            return min(round(consumed * 100), 0xFFFF)
        if address == BUS_TABLE + 3:
            return min(round(provided * 100), 0xFFFF)
        if MODULE_CODES <= address < MODULE_CODES + MAX_ADDRESS:
            devs = self.slots.get(address - MODULE_CODES + 1, [])
            if not devs:
                return 0
            return DUPLICATE_CODE if len(devs) > 1 else _model_code(devs[0])
        return None
