"""Modbus acquisition: profiles, codec, block planner, transports, per-line scheduler, scan.

Importing this package registers the Modbus source factory for the bus kinds ``modbus-tcp``,
``modbus-rtu`` and ``modbus-rtu-over-tcp`` (an explicit registry, STYLE.md §6).

Layers (STYLE.md §4): :mod:`.framing` (frames and PDUs, pure) → :mod:`.stream` / :mod:`.transport` (the
line: our framer on TCP, pymodbus on a serial port; typed errors from :mod:`.errors`) → :mod:`.planner`
(block reads) → :mod:`.codec` (registers ⇄ numbers) → the profile (:mod:`meterhub.profiles.schema`, the
register map as data) → :mod:`.reader` / :mod:`.scheduler` / :mod:`.mapping` (circuits) → :mod:`.source`,
which gets its link injected (:class:`.transport.RegisterLink`; :mod:`.memory` for tests).
"""

from __future__ import annotations

from meterhub.config.schema import BusKind
from meterhub.drivers.base import register_source
from meterhub.drivers.modbus.codec import ByteOrder, DataType, WordOrder, decode, encode
from meterhub.drivers.modbus.planner import Block, plan_reads
from meterhub.drivers.modbus.source import ModbusSource, modbus_sources
from meterhub.drivers.modbus.transport import ModbusLink, TransportKind
from meterhub.profiles.schema import Function, Point, Profile, ProfileError, ProfileKind

__all__ = [
    "Block",
    "ByteOrder",
    "DataType",
    "Function",
    "ModbusLink",
    "ModbusSource",
    "Point",
    "Profile",
    "ProfileError",
    "ProfileKind",
    "TransportKind",
    "WordOrder",
    "decode",
    "encode",
    "modbus_sources",
    "plan_reads",
]

for _kind in (BusKind.MODBUS_TCP, BusKind.MODBUS_RTU, BusKind.MODBUS_RTU_OVER_TCP):
    register_source(_kind, modbus_sources)
