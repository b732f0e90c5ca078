"""The waveform source's energy registers across kill -9: stored with each flush, seeded back from
storage where storage is ahead of the state file, so a register never restarts below a stored value."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from meterhub.drivers.base import ComputesRegisters
from meterhub.model.quantities import Q
from meterhub.model.readings import Reading, SeriesKey
from meterhub.model.topology import Phase

from .test_resume import FS, _frame, _source, _stream, _wh

E = SeriesKey("press", Q.ENERGY_ACTIVE_IMPORT, Phase.TOTAL)


def _feed(
    src, x: np.ndarray, first: int, last: int, seq0: int = 0, origin: float = 1_700_000_000.0
) -> list[Reading]:
    out: list[Reading] = []
    for k, f in enumerate(range(first, last, 640)):
        src.process(_frame(x, seq0 + k, f, origin=origin), out.extend)
    return out


def test_the_source_names_its_register_series_from_the_configuration(tmp_path: Path) -> None:
    src = _source(tmp_path)
    assert isinstance(src, ComputesRegisters)
    keys = set(src.computed_series())
    # 3P4W: seven four-quadrant registers and reactive import and export for L1, L2, L3 and the total
    assert len(keys) == 36 and E in keys and SeriesKey("press", Q.ENERGY_REACTIVE_IMPORT, Phase.L2) in keys


def test_a_source_seeded_from_storage_ahead_of_its_state_file_continues_from_storage(tmp_path: Path) -> None:
    x = _stream(3.0)
    killed = _source(tmp_path)
    _feed(killed, x, 0, 9600)  # 1.5 s
    killed._save_energy()  # its state file, every 10 s in a real run
    emitted = _feed(killed, x, 9600, 19200, seq0=15)  # 1.5 s more, flushed to storage, then kill -9
    stored = dict(killed.computed_registers())
    # the register as stored covers every reading emitted (the analyser integrates whole windows)
    assert stored[E] >= max(r.value for r in emitted if r.key == E) > 2.0  # > 1.2 s of 5 975.6 W
    restarted = _source(tmp_path)
    from_file = restarted.computed_registers()[E]
    assert from_file <= _wh(x[:, :9600]) < stored[E]  # the file is behind storage
    restarted.seed_registers({**stored, SeriesKey("other", Q.ENERGY_ACTIVE_IMPORT, Phase.TOTAL): 1e9})
    assert restarted.computed_registers() == stored  # every register continues from storage
    # a new stream of the restarted board: the first reading is above everything stored
    readings = _feed(restarted, x, 0, 12800, origin=1_700_000_100.0)
    first = next(r.value for r in readings if r.key == E)
    assert first > stored[E]
    assert restarted.computed_registers()[E] - stored[E] > _wh(x[:, :3200])  # and counts on from there


def test_storage_below_the_state_file_does_not_lower_a_register(tmp_path: Path) -> None:
    x = _stream(1.0)
    src = _source(tmp_path)
    _feed(src, x, 0, 6400)
    asyncio.run(src.close())  # a clean stop: the file holds the newest registers
    again = _source(tmp_path)
    from_file = dict(again.computed_registers())
    again.seed_registers({k: v / 2 for k, v in from_file.items()})
    assert again.computed_registers() == from_file
    assert from_file[E] == pytest.approx(5975.6 / 3600 * 6400 / FS, rel=2e-3)  # close: all of 1 s, 1.66 Wh
