"""A simulated Modbus device: a profile at a unit id, its register image computed from a value model.

Every register a profile maps is computed on request from the model (:class:`meterhub.sim.physics.SiteModel`,
or :class:`meterhub.sim.io.IOSimulation` for IO modules) and encoded exactly as the profile says (type,
word/byte order, scale, unit) by the simulator's own encoder (:mod:`.encoding`), so the reader decodes it
back through the same profile — the round trip every profile is tested with — without sharing code with
it. Identification registers answer their profile value; writable points keep what was written
(read-back works). A CT the site marks ``reversed`` is simulated as mounted the wrong way round, following
the catalogue's reversal rules (:attr:`meterhub.model.quantities.Quantity.reversal`).
"""

from __future__ import annotations

import math
import time
import zlib
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Protocol

from pymodbus.constants import ExcCodes

from meterhub.config.schema import Circuit, SiteConfig
from meterhub.model.quantities import CATALOGUE, Q, Reversal
from meterhub.model.topology import Phase, Wiring
from meterhub.profiles.datatypes import register_count
from meterhub.profiles.schema import Function, Point, Profile, ProfileKind
from meterhub.profiles.transformers import circuit_ratios, ratio_factor
from meterhub.sim.encoding import encode_registers
from meterhub.sim.physics import SiteModel

__all__ = [
    "DeviceTable",
    "DictTable",
    "ProfileDevice",
    "ValueModel",
    "model_value",
    "reversed_channels",
    "wiring_for",
]

_PHASES = (Phase.L1, Phase.L2, Phase.L3)
#: spectrum quantity → (voltage?, in % of the fundamental?)
_SPECTRA: dict[str, tuple[bool, bool]] = {
    Q.HARMONICS_VOLTAGE: (True, False),
    Q.HARMONICS_VOLTAGE_PERCENT: (True, True),
    Q.HARMONICS_CURRENT: (False, False),
    Q.HARMONICS_CURRENT_PERCENT: (False, True),
}
#: a reactive import/export register is the sum of two quadrant registers (IEC 62053-23: import Q1+Q2,
#: export Q3+Q4)
_REACTIVE_OF: dict[str, tuple[str, str]] = {
    Q.ENERGY_REACTIVE_IMPORT: (Q.ENERGY_REACTIVE_Q1, Q.ENERGY_REACTIVE_Q2),
    Q.ENERGY_REACTIVE_EXPORT: (Q.ENERGY_REACTIVE_Q3, Q.ENERGY_REACTIVE_Q4),
}


def reversed_channels(circuit: Circuit) -> set[int]:
    """The device channels of ``circuit`` whose CT the site marks reversed (``reversed: true`` for
    all of them, or one flag per channel)."""
    flags = circuit.reversed
    if isinstance(flags, bool):
        return set(circuit.channels) if flags else set()
    return {ch for ch, f in zip(circuit.channels, flags, strict=False) if f}


def wiring_for(profile: Profile) -> Wiring:
    """The wiring a single simulated device of ``profile`` measures (``meterhub simulate ID``)."""
    n = profile.channels if profile.kind is not ProfileKind.METER else 3
    if profile.kind is ProfileKind.METER and all(
        e.phase in (None, Phase.L1, Phase.TOTAL) for e in profile.registers
    ):
        n = 1  # a single-phase meter
    return {1: Wiring.P1W2, 2: Wiring.P1W3}.get(n, Wiring.P3W4)


class ValueModel(Protocol):
    """Where a simulated device takes its values: the site's :class:`SiteModel`, or for IO modules
    :class:`meterhub.sim.io.IOSimulation` (pulse counters, contacts, analog signals)."""

    config: SiteConfig

    def value(
        self, device_id: str, quantity: str, phase: Phase | None, channel: int | None = None
    ) -> float | None: ...


def model_value(model: SiteModel | ValueModel, device_id: str, p: Point) -> float | None:
    """The value the physical model gives for one profile point, in catalogue units."""
    q, ph, ch = p.quantity, p.phase, p.channel
    if p.order is not None:  # spectra: harmonics in % of the fundamental or in A / V
        spectrum = _SPECTRA.get(q)
        if spectrum is None or not isinstance(model, SiteModel):
            return None
        voltage, percent = spectrum
        if voltage:
            sup = model.supply()
            idx = _PHASES.index(ph) if ph in _PHASES else 0
            frac = float(sup.harmonics_voltage[idx, p.order])
            u1 = float(sup.voltage[idx]) / math.sqrt(1 + (float(sup.thd_voltage[idx]) / 100) ** 2)
            return frac * 100.0 if percent else frac * u1
        if ch is None:
            return None
        try:
            state = model.channel(device_id, ch)
        except KeyError:
            return None
        frac = float(state.harmonics_current[p.order])
        i1 = state.current / math.sqrt(1 + (state.thd_current / 100) ** 2)
        return frac * 100.0 if percent else frac * i1
    quadrants = _REACTIVE_OF.get(q)
    if quadrants is not None:
        parts = [model.value(device_id, n, ph, ch) for n in quadrants]
        if any(v is None for v in parts):
            return None
        return math.fsum(v for v in parts if v is not None)
    return model.value(device_id, q, ph, ch)


@dataclass
class ProfileDevice:
    """One simulated device: a profile at a unit id, its values from the model."""

    device_id: str
    profile: Profile
    model: SiteModel | ValueModel | None
    ident_overrides: dict[str, float] = field(default_factory=dict)
    alive: bool = True  # False: the device stops answering (tests of dead-device isolation)
    reject_holes: bool = False  # True: a read over an unmapped register gets exception 02, as some meters do
    requests: int = 0
    #: extra registers outside the profile (e.g. the V10 bus table): (table, address) → value or None
    extra: Callable[[Function, int], int | None] | None = None
    #: how often the device refreshes its measurement registers [s] (real meters: 0.1…1 s; Janitza UMG:
    #: every 200 ms); reads in between see the same image, and the model is not asked again
    refresh: float = 0.2

    def __post_init__(self) -> None:
        self._points: dict[Function, list[Point]] = {}
        for p in self.profile.points():
            self._points.setdefault(p.function, []).append(p)
        for pts in self._points.values():
            pts.sort(key=lambda p: p.address)
        self._starts = {fn: [p.address for p in pts] for fn, pts in self._points.items()}
        self.written: dict[tuple[Function, int], int] = {}
        self._image: dict[Point, list[int]] = {}
        self._image_t = -math.inf
        self._reversed: set[int] = set()
        # a device that reports secondary values serves primary / ratio (profiles/transformers.py)
        self._ratios: dict[int | None, tuple[float, float]] = {}
        if self.model is not None:
            mine = [c for c in self.model.config.circuits if c.device == self.device_id]
            for c in mine:
                if c.reversed:
                    self._reversed |= reversed_channels(c)
                for ch in c.channels:
                    self._ratios[ch] = circuit_ratios(self.profile, c)
            shared = {circuit_ratios(self.profile, c) for c in mine}
            if len(shared) == 1:  # device totals: only when every circuit has the same ratios
                self._ratios[None] = shared.pop()
        self._fixed: dict[tuple[Function, int], int] = {}
        for e in self.profile.identification:
            if e.name in self.ident_overrides:
                value = self.ident_overrides[e.name]
            elif e.value is not None:
                value = e.value
            elif e.name == "serial_number":
                value = float(zlib.crc32(self.device_id.encode()) % 100_000_000)  # stable per device
            else:
                continue  # a range check on a measured register: the model supplies it
            regs = encode_registers(
                value, e.type, word_order=e.word_order or self.profile.defaults.word_order
            )
            for k, r in enumerate(regs):
                self._fixed[(e.function, e.address + k)] = r
        self._writable_addr = {
            (w.function, w.address + k)
            for w in self.profile.writable
            for k in range(1 if w.function is Function.COIL else register_count(w.type))
        }
        t = self.profile.transformers
        for reg in (t.ct_register, t.vt_register) if t is not None else ():
            if reg is not None:  # the device's own ratio setting: kept as written (read-back works)
                self._writable_addr |= {
                    (reg.function, reg.address + k) for k in range(register_count(reg.type))
                }

    def _value_regs(self, p: Point) -> list[int]:
        now = time.monotonic()
        if now - self._image_t >= self.refresh:
            self._image.clear()
            self._image_t = now
        regs = self._image.get(p)
        if regs is None:
            regs = self._image[p] = self._encode(p)
        return regs

    def _encode(self, p: Point) -> list[int]:
        value = model_value(self.model, self.device_id, p) if self.model is not None else None
        ch = (
            p.channel
            if p.channel is not None
            else (_PHASES.index(p.phase) + 1 if p.phase in _PHASES else None)
        )
        if ch in self._reversed and self.model is not None:
            # a CT mounted the wrong way round: the device measures −i (the gateway undoes it)
            spec = CATALOGUE[p.quantity]
            if spec.reversal is Reversal.NEGATE and value is not None:
                value = -value
            elif spec.reversal is Reversal.SWAP and spec.counterpart is not None:
                value = model_value(self.model, self.device_id, replace(p, quantity=spec.counterpart))
            elif spec.reversal is Reversal.ROTATE and value is not None:
                value = (value + 360.0) % 360.0 - 180.0
        ratios = self._ratios.get(ch)
        if ratios is not None and ratios != (1.0, 1.0) and value is not None:
            value = value / ratio_factor(p.quantity, *ratios)
        if p.function.is_bit:
            return [int(bool(value))]
        return encode_registers(
            value, p.dtype, word_order=p.word_order, byte_order=p.byte_order, factor=p.factor
        )

    def registers(self, function: Function, address: int, count: int) -> list[int] | ExcCodes:
        """Image of ``count`` registers (bits) from ``address``; exception 02 if nothing is mapped there."""
        self.requests += 1
        end = address + count
        out = [0] * count
        mapped = False
        pts = self._points.get(function, [])
        starts = self._starts.get(function, [])
        i = max(0, bisect_left(starts, address) - 1)
        while i < len(pts) and pts[i].address < end:
            p = pts[i]
            i += 1
            if p.end <= address:
                continue
            mapped = True
            regs = self._value_regs(p)
            for k, r in enumerate(regs):
                a = p.address + k
                if address <= a < end:
                    out[a - address] = r
        for (fn, a), r in self._fixed.items():
            if fn is function and address <= a < end:
                out[a - address] = r
                mapped = True
        for (fn, a), r in self.written.items():
            if fn is function and address <= a < end:
                out[a - address] = r
                mapped = True
        if self.extra is not None:
            for a in range(address, end):
                v = self.extra(function, a)
                if v is not None:
                    out[a - address] = v
                    mapped = True
        if self.reject_holes and not all(self._is_mapped(function, a) for a in range(address, end)):
            return ExcCodes.ILLEGAL_ADDRESS
        if not mapped and not any(fn is function and address <= a < end for fn, a in self._writable_addr):
            return ExcCodes.ILLEGAL_ADDRESS
        return out

    def _is_mapped(self, function: Function, address: int) -> bool:
        if (function, address) in self._fixed or (function, address) in self._writable_addr:
            return True
        return any(p.address <= address < p.end for p in self._points.get(function, []))

    def coil(self, quantity: str, channel: int) -> int:
        """The value last written to the writable ``quantity`` of ``channel`` (0 before any write)."""
        for w in self.profile.writable:
            if w.quantity == quantity and w.channel == channel:
                return self.written.get((w.function, w.address), 0)
        raise KeyError(f"{self.profile.id} has no writable {quantity} on channel {channel}")

    def write(self, function: Function, address: int, values: list[int]) -> ExcCodes | None:
        for k in range(len(values)):
            if (function, address + k) not in self._writable_addr:
                return ExcCodes.ILLEGAL_ADDRESS
        for k, v in enumerate(values):
            self.written[(function, address + k)] = int(v)
        return None


class DeviceTable(Protocol):
    """What a server needs to find the device at a unit id (a dict wrapper or a module bus)."""

    def get(self, unit: int) -> ProfileDevice | None: ...
    def collided(self, unit: int) -> bool: ...
    def units(self) -> list[int]: ...


class DictTable:
    """A fixed set of devices, one per unit id."""

    def __init__(self, devices: dict[int, ProfileDevice]) -> None:
        self.devices = devices

    def get(self, unit: int) -> ProfileDevice | None:
        return self.devices.get(unit)

    def collided(self, unit: int) -> bool:
        return False

    def units(self) -> list[int]:
        return sorted(self.devices)
