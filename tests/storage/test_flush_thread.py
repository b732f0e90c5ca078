"""Flushes run in a worker thread: the event loop keeps processing readings while a transaction is
written, and shutdown (SIGTERM → ``Gateway.stop``) still writes everything buffered.

No timing assertions: a flush is held open inside its transaction by an event, and the tests check
the order in which things happen while it is held.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from meterhub.config import parse_config
from meterhub.model.readings import Reading, SeriesKey
from meterhub.model.topology import Phase
from meterhub.runtime import Gateway
from meterhub.storage import open_storage
from meterhub.storage.relational import SqlStorage

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
VOLT = SeriesKey("main", "voltage", Phase.L1)
ENERGY = SeriesKey("main", "energy_active_import", Phase.TOTAL)
SITE = "site: {name: t, timezone: UTC}\nstorage: {flush_interval: 3600}\n"  # the flusher never fires


class Gate:
    """Holds the first flush inside its transaction (after the raw rows, before the commit) until
    released; later flushes pass."""

    def __init__(self, storage: SqlStorage, events: list[str]) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.events = events
        inner = storage._flush_batch

        def held(batch: list[Reading]) -> None:
            inner(batch)
            if self.entered.is_set():
                return
            self.entered.set()
            if not self.release.wait(10):  # a regression must fail the test, not hang it
                self.events.append("gate timed out")
            self.events.append("transaction continues")

        storage._flush_batch = held  # type: ignore[method-assign]


def volts(t: float, v: float) -> list[Reading]:
    return [Reading(t, "main", "voltage", Phase.L1, v)]


def test_write_and_save_registers_do_not_wait_for_a_flush_in_progress(tmp_path: Path) -> None:
    storage = open_storage(parse_config(SITE).storage, tmp_path)
    assert isinstance(storage, SqlStorage)
    events: list[str] = []
    gate = Gate(storage, events)
    storage.write(volts(T0, 230.0))
    flusher = threading.Thread(target=storage.flush)
    flusher.start()
    assert gate.entered.wait(10)

    def meanwhile() -> None:  # what the event loop does while the transaction is open
        storage.write(volts(T0 + 1, 231.0))
        storage.save_registers({ENERGY: 1000.0})
        events.append("written during the flush")

    other = threading.Thread(target=meanwhile)
    other.start()
    other.join(10)
    gate.release.set()
    flusher.join(10)
    assert events == ["written during the flush", "transaction continues"]
    assert [p.last for p in storage.history(VOLT, T0, T0 + 10)] == [230.0]  # 231 V not yet flushed
    assert storage.buffered == 1
    storage.flush()  # no gate this time: the next flush writes what arrived meanwhile
    assert [p.last for p in storage.history(VOLT, T0, T0 + 10)] == [230.0, 231.0]
    assert storage.load_registers()[ENERGY] == 1000.0
    storage.close()


def test_gateway_keeps_processing_readings_while_a_flush_is_written(tmp_path: Path) -> None:
    cfg = parse_config(SITE)
    storage = open_storage(cfg.storage, tmp_path / "data")
    assert isinstance(storage, SqlStorage)
    events: list[str] = []
    gate = Gate(storage, events)

    async def go() -> None:
        gw = Gateway(cfg, data_dir=tmp_path / "data", storage=storage)
        await gw.start()
        try:
            gw.emit(volts(T0, 230.0))
            flushing = asyncio.create_task(gw.flush_async())
            await asyncio.to_thread(gate.entered.wait, 10)  # the loop is free while the thread writes
            events.append("flush in progress")
            gw.emit(volts(T0 + 1, 231.0))  # energy stage, live cache and bus, on the loop
            await asyncio.sleep(0)
            live = {(r.circuit, r.quantity): r.value for r in gw.live.readings()}
            events.append(f"live {live[('main', 'voltage')]}")
            gate.release.set()
            await flushing
            events.append("flush done")
        finally:
            await gw.stop()

    asyncio.run(go())
    assert events == ["flush in progress", "live 231.0", "transaction continues", "flush done"]
    reopened = open_storage(cfg.storage, tmp_path / "data")
    try:  # the reading that arrived during the flush was written on stop
        assert [p.last for p in reopened.history(VOLT, T0, T0 + 10)] == [230.0, 231.0]
    finally:
        reopened.close()


@pytest.mark.parametrize("mid_flush", [False, True], ids=["idle", "flush-running"])
def test_stop_flushes_everything_buffered_and_the_registers(tmp_path: Path, mid_flush: bool) -> None:
    """SIGTERM sets the stop event and the CLI awaits ``Gateway.stop``: readings still queued for the
    storage sink, readings in the storage buffer and the energy registers all reach the database —
    also when stop arrives while the periodic flush is inside its transaction."""
    cfg = parse_config(SITE)
    storage = open_storage(cfg.storage, tmp_path / "data")
    assert isinstance(storage, SqlStorage)
    events: list[str] = []
    gate = Gate(storage, events) if mid_flush else None

    async def go() -> dict[str, Any]:
        gw = Gateway(cfg, data_dir=tmp_path / "data", storage=storage)
        await gw.start()
        # 0, 250, 500 Wh one second apart: the guarded register ends at 500 Wh
        for k in range(3):
            gw.emit([Reading(T0 + k, "main", "energy_active_import", Phase.TOTAL, 250.0 * k)])
            gw.emit(volts(T0 + k, 230.0 + k))
            await asyncio.sleep(0)
        pending: asyncio.Task[None] | None = None
        if gate is not None:
            pending = asyncio.create_task(gw.flush_async())
            await asyncio.to_thread(gate.entered.wait, 10)
        gw.emit(volts(T0 + 3, 233.0))  # still in the sink's queue when stop begins
        registers = dict(gw.energy.registers())
        if gate is not None:
            asyncio.get_running_loop().call_soon(gate.release.set)
        await gw.stop()
        if pending is not None:
            await pending
        return registers

    registers = asyncio.run(go())
    assert registers[ENERGY] == 500.0
    reopened = open_storage(cfg.storage, tmp_path / "data")
    try:
        assert [p.last for p in reopened.history(VOLT, T0, T0 + 10)] == [230.0, 231.0, 232.0, 233.0]
        assert [p.last for p in reopened.history(ENERGY, T0, T0 + 10)] == [0.0, 250.0, 500.0]
        assert reopened.load_registers()[ENERGY] == 500.0
    finally:
        reopened.close()
    if gate is not None:
        assert "gate timed out" not in events
