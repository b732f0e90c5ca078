"""Registers the sources compute, in the running gateway: stored with every flush, in its transaction,
and handed back at start (seeded) where storage is ahead of the source's state file."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from meterhub.config.loader import parse_config
from meterhub.drivers.base import SourceContext
from meterhub.drivers.waveform.source import WaveformSource
from meterhub.model.quantities import Q
from meterhub.model.readings import Quality, Reading, SeriesKey
from meterhub.model.topology import Phase
from meterhub.runtime import Gateway
from meterhub.runtime.sinks import computed_registers, seed_computed
from meterhub.storage import open_storage

T0 = 1_763_784_000.0
SITE = """
site: {name: computed registers, timezone: UTC}
buses: [{id: adc, kind: waveform, host: 127.0.0.1, port: 1, timeout: 0.2}]
devices: [{id: board, bus: adc, profile: meterhub-adc-8x3}]
circuits:
  - {id: press, device: board, channels: [1, 2, 3], wiring: 3P4W, ct: {kind: adapter-5a, ratio: 100/5}}
"""
IMP = SeriesKey("press", Q.ENERGY_ACTIVE_IMPORT, Phase.TOTAL)
EXP_L1 = SeriesKey("press", Q.ENERGY_ACTIVE_EXPORT, Phase.L1)
Q1 = SeriesKey("press", Q.ENERGY_REACTIVE_Q1, Phase.TOTAL)


def _state_file(data: Path, total_import: float) -> None:
    data.mkdir(parents=True, exist_ok=True)
    regs = {"press": {"total": {Q.ENERGY_ACTIVE_IMPORT: total_import}}}
    (data / "waveform-adc.json").write_text(json.dumps(regs))


def test_a_source_is_seeded_from_saved_computed_registers_or_else_the_latest_valid_reading(tmp_path):
    cfg = parse_config(SITE)
    data = tmp_path / "data"
    _state_file(data, 100.0)
    storage = open_storage(cfg.storage, data)
    storage.save_computed_registers({IMP: 120.0})  # flushed after the state file was saved
    storage.write(
        [
            Reading(T0, EXP_L1.circuit, EXP_L1.quantity, EXP_L1.phase, 7.0),  # no computed one (old data)
            Reading(T0 + 1, Q1.circuit, Q1.quantity, Q1.phase, 3.0),
            Reading(T0 + 2, Q1.circuit, Q1.quantity, Q1.phase, 9e9, Quality.INVALID),  # never a seed
        ]
    )
    storage.flush()
    src = WaveformSource(SourceContext(cfg, cfg.buses[0], cfg.devices, {}, data), cfg.devices[0])
    assert seed_computed([src], storage, T0 + 10) == 3
    regs = computed_registers([src])
    assert (regs[IMP], regs[EXP_L1], regs[Q1]) == (120.0, 7.0, 3.0)
    storage.close()


def test_the_gateway_stores_computed_registers_with_each_flush_and_seeds_its_sources_at_start(tmp_path):
    cfg = parse_config(SITE)
    data = tmp_path / "data"
    _state_file(data, 100.0)

    async def run(extra: float | None) -> tuple[dict[SeriesKey, float], float]:
        gw = Gateway(cfg, data_dir=data)
        await gw.start()
        try:
            (src,) = gw.sources
            assert isinstance(src, WaveformSource)
            if extra is not None:  # what the source counted after its state file was saved
                src._energy["press"]["total"][Q.ENERGY_ACTIVE_IMPORT] += extra
            await gw.flush_async()
            return gw.storage.load_computed_registers(), src.computed_registers()[IMP]
        finally:
            await gw.stop()

    stored, _ = asyncio.run(run(25.0))
    assert stored[IMP] == 125.0  # in the flush's transaction
    _state_file(data, 100.0)  # kill -9: the state file is older than the last flush
    _, seeded = asyncio.run(run(None))
    assert seeded == 125.0  # the restarted source continues from storage, not from its file


def test_a_value_the_energy_stage_accepted_after_the_last_commit_seeds_the_source(tmp_path):
    # kill -9 between a flush's staging (the energy stage's state file already holds the raw value it
    # accepted last: 118 Wh) and its commit (storage still holds 110 Wh): the source continues at 118
    cfg = parse_config(SITE)
    data = tmp_path / "data"
    _state_file(data, 100.0)
    storage = open_storage(cfg.storage, data)
    storage.save_registers({IMP: 110.0})
    storage.save_computed_registers({IMP: 110.0})
    storage.flush()
    storage.close()
    (data / "energy-state.json").write_text(json.dumps({"version": 1, "raw": {str(IMP): 118.0}}))

    async def run() -> float:
        gw = Gateway(cfg, data_dir=data)
        await gw.start()
        try:
            (src,) = gw.sources
            assert isinstance(src, WaveformSource)
            return src.computed_registers()[IMP]
        finally:
            await gw.stop()

    assert asyncio.run(run()) == 118.0
