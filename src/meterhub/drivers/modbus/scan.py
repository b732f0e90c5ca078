"""Scan a line: which unit ids answer, which profile each one is, and which addresses collide.

For every unit id the scan reads the identification registers of the known profiles (each distinct
register once per unit). A profile whose model code matches is a *sure* match; one whose plausibility
range matches (e.g. an Eastron meter: input 30001 holds a voltage) is a *likely* match.

Duplicate addresses: on an RS485 line two devices with the same address answer the same request at
the same time and the frames collide, so the master sees a CRC error or a garbled, short frame instead
of silence (Modbus over Serial Line V1.02 §2.5.1.2: a frame with a bad CRC is discarded). Such a
unit is reported as a probable duplicate. A seed-000 voltage unit also reports the duplicates it
found on its module bus (seed 000 §9) in its bus table (see ``SCHEMA.md``, "module bus").
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from meterhub.drivers.modbus.codec import CodecError, WordOrder, decode, register_count
from meterhub.drivers.modbus.transport import (
    ModbusConnectionError,
    ModbusExceptionResponse,
    ModbusFrameError,
    ModbusTimeout,
    RegisterLink,
)
from meterhub.profiles.modulebus import BUS_TABLE, DUPLICATE_CODE, MODULE_CODES, MODULE_SLOTS
from meterhub.profiles.schema import Function, IdentEntry, Profile

__all__ = ["BUS_TABLE", "MODULE_CODES", "ScanHit", "ScanResult", "parse_units", "scan_line"]


log = logging.getLogger("meterhub.modbus")


@dataclass
class ScanHit:
    """One unit id that answered."""

    unit: int
    sure: list[str] = field(default_factory=list)  # profile ids whose model code matched
    likely: list[str] = field(default_factory=list)  # profile ids whose plausibility check matched
    info: dict[str, float] = field(default_factory=dict)  # e.g. serial_number
    duplicate: str | None = None  # why this address is probably used twice

    @property
    def profiles(self) -> list[str]:
        return self.sure or self.likely

    def as_dict(self) -> dict[str, object]:
        return {
            "unit": self.unit,
            "profile": self.profiles[0] if len(self.profiles) == 1 else None,
            "candidates": self.profiles,
            "sure": bool(self.sure),
            "info": self.info,
            "duplicate": self.duplicate,
        }


@dataclass
class ScanResult:
    hits: list[ScanHit] = field(default_factory=list)
    silent: int = 0
    #: voltage unit id → its module-bus table (seed 000 family)
    module_bus: dict[int, dict[str, object]] = field(default_factory=dict)
    #: addresses a voltage unit reports as used twice on its module bus
    bus_duplicates: list[int] = field(default_factory=list)

    @property
    def duplicates(self) -> list[ScanHit]:
        return [h for h in self.hits if h.duplicate]

    def duplicate_units(self) -> list[int]:
        return sorted({h.unit for h in self.duplicates} | set(self.bus_duplicates))


def parse_units(text: str) -> list[int]:
    """``"1-10,20,30-32"`` → [1…10, 20, 30, 31, 32]; each 1…247 (Modbus over Serial Line §2.2)."""
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        lo_s, _, hi_s = part.partition("-")
        try:
            lo = int(lo_s)
            hi = int(hi_s) if hi_s else lo
        except ValueError:
            raise ValueError(f"unit range {part!r} is not N or N-M") from None
        if not (1 <= lo <= hi <= 247):
            raise ValueError(f"unit range {part!r} must lie within 1-247")
        out.extend(range(lo, hi + 1))
    return sorted(set(out))


_Key = tuple[Function, int, str, str | None]


def _key(e: IdentEntry) -> _Key:
    return (e.function, e.address, e.type.value, e.word_order.value if e.word_order else None)


async def _read_ident(link: RegisterLink, unit: int, e: IdentEntry, default_word: str) -> float:
    regs = await link.read(e.function, unit, e.address, 1 if e.function.is_bit else register_count(e.type))
    if e.function.is_bit:
        return float(regs[0])
    return decode(regs, e.type, word_order=e.word_order or WordOrder(default_word))


async def scan_line(link: RegisterLink, units: Iterable[int], profiles: list[Profile]) -> ScanResult:
    """Probe each unit id; see the module docstring."""
    entries: dict[_Key, list[tuple[Profile, IdentEntry]]] = {}
    for p in profiles:
        for e in p.identification:
            entries.setdefault(_key(e), []).append((p, e))
    # model codes first: one sure answer settles most units with a single read
    order = sorted(entries, key=lambda k: (0 if any(e.value is not None for _, e in entries[k]) else 1, k[1]))
    result = ScanResult()
    for unit in units:
        hit = ScanHit(unit)
        answered = False
        for k in order:
            p0, e0 = entries[k][0]
            try:
                v = await _read_ident(link, unit, e0, p0.defaults.word_order.value)
            except ModbusTimeout:
                if not answered:
                    break  # silent unit: do not spend more timeouts on it
                continue
            except ModbusExceptionResponse as exc:
                if exc.code in (10, 11):  # a TCP gateway says: nobody at this unit
                    break
                answered = True
                continue
            except ModbusFrameError as exc:
                answered = True
                hit.duplicate = f"garbled answer ({exc}); two devices at this address?"
                log.warning("scan: unit %d: %s", unit, hit.duplicate)
                break
            except ModbusConnectionError:
                raise
            except CodecError:
                answered = True
                continue
            answered = True
            for p, e in entries[k]:
                m = e.matches(v)
                if m is None:
                    hit.info[e.name] = v
                elif m and e.value is not None and p.id not in hit.sure:
                    hit.sure.append(p.id)
                elif m and e.value is None and p.id not in hit.likely:
                    hit.likely.append(p.id)
        if answered and "enertrek-v10" in hit.sure:
            await _module_bus_table(link, unit, result)
        if answered:
            result.hits.append(hit)
        else:
            result.silent += 1
    return result


async def _module_bus_table(link: RegisterLink, unit: int, result: ScanResult) -> None:
    """Read a seed-000 voltage unit's bus table (SCHEMA.md "module bus") and note its duplicates."""
    try:
        head = await link.read(Function.HOLDING, unit, BUS_TABLE, 4)
        codes = await link.read(Function.HOLDING, unit, MODULE_CODES, MODULE_SLOTS)
    except (ModbusTimeout, ModbusExceptionResponse, ModbusFrameError):
        return
    result.module_bus[unit] = {
        "modules": head[0],
        "duplicates": head[1],
        "consumption_w": head[2] / 100,
        "supply_w": head[3] / 100,
        "addresses": {a + 1: c for a, c in enumerate(codes) if c},
    }
    for a, c in enumerate(codes):
        if c == DUPLICATE_CODE:
            result.bus_duplicates.append(a + 1)
