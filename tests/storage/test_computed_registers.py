"""Registers the sources compute (waveform energy, pulse totals): stored in the flush transaction,
beside — not mixed with — the guarded energy registers of the same series, and never lower."""

from __future__ import annotations

from meterhub.model.readings import Reading, SeriesKey
from meterhub.model.topology import Phase
from meterhub.storage.spool import Spool, decode, encode

T0 = 1_798_761_600.0  # 2027-01-01T00:00:00Z
E = SeriesKey("compressor", "energy_active_import", Phase.TOTAL)
GAS = SeriesKey("gas-main", "pulse_count", Phase.TOTAL)


def test_computed_registers_survive_a_reopen_beside_the_energy_registers(storage_spec) -> None:
    storage = storage_spec.open()
    storage.write([Reading(T0, E.circuit, E.quantity, E.phase, 1000.0)])
    storage.save_registers({E: 1000.0})
    storage.save_computed_registers({E: 1000.25, GAS: 42.0})
    storage.flush()
    storage.close()
    again = storage_spec.open()
    assert again.load_computed_registers() == {E: 1000.25, GAS: 42.0}
    assert again.load_registers() == {E: 1000.0}  # the guarded register: its own table
    assert GAS not in again.series()  # a computed register alone creates no stored series


def test_a_lower_computed_register_never_replaces_a_stored_one(storage_spec) -> None:
    storage = storage_spec.open()
    storage.save_computed_registers({E: 500.0})
    storage.flush()
    storage.save_computed_registers({E: 499.0, GAS: 7.0})
    assert storage.load_computed_registers() == {E: 500.0, GAS: 7.0}  # pending ones count, not lower
    storage.flush()
    storage.close()
    assert storage_spec.open().load_computed_registers() == {E: 500.0, GAS: 7.0}


def test_discard_drops_unflushed_computed_registers(storage_spec) -> None:
    storage = storage_spec.open()
    storage.save_computed_registers({E: 12.0})
    storage.discard()
    storage.flush()
    assert storage.load_computed_registers() == {}


def test_a_spool_chunk_carries_computed_registers_and_old_chunks_read_without_them() -> None:
    batch = [Reading(T0, E.circuit, E.quantity, E.phase, 10.0)]
    readings, registers, computed = decode(encode(batch, {E: 10.0}, {E: 10.5, GAS: 3.0}))
    assert (readings, registers, computed) == (batch, {E: 10.0}, {E: 10.5, GAS: 3.0})
    assert decode(encode(batch, {E: 10.0}))[2] == {}


def test_the_spool_keeps_the_greatest_computed_register(tmp_path) -> None:
    spool = Spool(tmp_path / "s.db")
    spool.remember_registers({E: 10.0}, {E: 11.0})
    spool.append([], {}, {E: 12.0, GAS: 1.0})
    spool.remember_registers({}, {E: 9.0})
    spool.close()
    again = Spool(tmp_path / "s.db")
    assert again.computed_registers() == {E: 12.0, GAS: 1.0}
    assert again.registers() == {E: 10.0}
    chunk = again.first()
    assert chunk is not None and chunk.computed == {E: 12.0, GAS: 1.0}
    again.close()
