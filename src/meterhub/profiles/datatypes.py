"""Register data types of the profile format: what a profile's ``type``, ``word_order`` and
``byte_order`` fields may say, and how many 16-bit registers each type occupies.

The Modbus application protocol (Modbus Organization, *MODBUS Application Protocol Specification
V1.1b3* §4.2) defines a register as a big-endian 16-bit word and says nothing about how wider values
are laid out. Vendors differ in two independent ways:

* **word order** – for 32/64-bit values, ``big`` puts the most significant register first
  (Eastron, Janitza, Schneider); ``little`` puts it last (Carlo Gavazzi EM24, some Siemens).
* **byte order** – inside each register, ``big`` is the standard; ``little`` swaps the two bytes
  (rare, some gateways).

These are facts of the format, shared by the reader (:mod:`meterhub.drivers.modbus.codec`) and the
simulator (:mod:`meterhub.sim.encoding`), each of which has its own code to apply them.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["ByteOrder", "DataType", "WordOrder", "is_float", "register_count"]


class DataType(StrEnum):
    """Register data types of a profile entry."""

    INT16 = "int16"
    UINT16 = "uint16"
    INT32 = "int32"
    UINT32 = "uint32"
    INT64 = "int64"
    UINT64 = "uint64"
    FLOAT32 = "float32"
    FLOAT64 = "float64"


class WordOrder(StrEnum):
    BIG = "big"  # most significant register first
    LITTLE = "little"  # least significant register first


class ByteOrder(StrEnum):
    BIG = "big"  # high byte first inside a register (Modbus standard)
    LITTLE = "little"  # bytes swapped inside each register


_REGISTERS = {
    DataType.INT16: 1,
    DataType.UINT16: 1,
    DataType.INT32: 2,
    DataType.UINT32: 2,
    DataType.INT64: 4,
    DataType.UINT64: 4,
    DataType.FLOAT32: 2,
    DataType.FLOAT64: 4,
}


def register_count(dtype: DataType) -> int:
    """Number of 16-bit registers a value of ``dtype`` occupies."""
    return _REGISTERS[dtype]


def is_float(dtype: DataType) -> bool:
    """True for the IEEE 754 types (whose registers can say NaN, "not available")."""
    return dtype in (DataType.FLOAT32, DataType.FLOAT64)
