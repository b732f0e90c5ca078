"""Each CT kind end to end: terminal signal of the sensor → engine → primary quantities."""

from __future__ import annotations

import numpy as np
import pytest

from meterhub.config.schema import CTKind, CTSpec, Ratio
from meterhub.metering.aggregation import aggregate
from meterhub.metering.engine import Analyzer, CircuitSpec, EngineConfig
from meterhub.metering.sensors import PhaseTable, Sensor, sensor_for
from meterhub.model.topology import Wiring
from meterhub.sim.waveform import channel, theta

FS = 6400.0
F = 50.17
HARM = np.zeros(51)
HARM[1], HARM[5], HARM[7] = 1.0, 0.2, 0.1


def run(sensors: list[Sensor], i1: float, lag: float, duration: float = 3.0) -> dict:
    """A balanced 230 V system; phase k's current lags by ``lag`` and is measured through sensors[k]."""
    n = int(FS * duration)
    th = theta(n, FS, F, 0.4)
    angles = (0.0, -120.0, 120.0)
    v = np.vstack([channel(th, 230.0, a) for a in angles])
    term = np.vstack(
        [s.output(th + np.radians(a - lag), i1, HARM, F) for s, a in zip(sensors, angles, strict=True)]
    )
    an = Analyzer(
        EngineConfig(fs=FS),
        [CircuitSpec("c", Wiring.P3W4, (0, 1, 2), (0, 1, 2))],
        current_channels=3,
        sensors=dict(enumerate(sensors)),
    )
    parts = [an.feed(v[:, k : k + 640], term[:, k : k + 640]) for k in range(0, n, 640)]
    parts = [p for p in parts if p.windows][5:]  # skip the first second (DC blockers settle)
    q = {
        g: {k: np.concatenate([p.circuits["c"][g][k] for p in parts]) for k in parts[0].circuits["c"][g]}
        for g in parts[0].circuits["c"]
    }
    dur = np.concatenate([p.duration for p in parts])
    agg = aggregate(q, dur, np.array([0]))
    return {g: {k: x[0] for k, x in d.items()} for g, d in agg.items()}


def specs() -> list[tuple[str, CTSpec]]:
    return [
        ("current-output 100/0.05 A into 10 Ω", CTSpec(kind=CTKind.CURRENT_OUTPUT, ratio=Ratio.model_validate("100/0.05"), burden=10)),
        ("333 mV 50/0.333", CTSpec(kind=CTKind.VOLTAGE_OUTPUT, ratio=Ratio.model_validate("50/0.333"))),
        ("Rogowski 200 A/V", CTSpec(kind=CTKind.ROGOWSKI, ratio=Ratio.model_validate("200/1"))),
        ("5 A adapter behind 800/5", CTSpec(kind=CTKind.ADAPTER_5A, ratio=Ratio.model_validate("800/5"))),
        ("built-in", CTSpec(kind=CTKind.BUILT_IN)),
    ]  # fmt: skip


@pytest.mark.parametrize(("name", "ct"), specs(), ids=[n for n, _ in specs()])
@pytest.mark.parametrize("lag", [0.0, 60.0])
def test_each_ct_kind_gives_primary_current_and_power(name: str, ct: CTSpec, lag: float) -> None:
    sensors = [sensor_for(ct, fs=FS, f_nominal=50.0) for _ in range(3)]
    a = run(sensors, 20.0, lag)
    i_rms = 20.0 * np.sqrt(1 + 0.04 + 0.01)
    p = 230.0 * 20.0 * np.cos(np.radians(lag))  # harmonics carry no power (sinusoidal voltage)
    tol = 5e-4 if lag == 0 else 1e-3
    for ph in ("L1", "L2", "L3"):
        assert a[ph]["current"] == pytest.approx(i_rms, rel=5e-4), name
        assert a[ph]["active_power"] == pytest.approx(p, rel=tol, abs=1e-3 * 4600), name
        assert a[ph]["harmonics_current"][5] == pytest.approx(4.0, abs=1e-3 * 20), name
        assert a[ph]["angle_voltage_current"] == pytest.approx(lag, abs=0.02), name
    assert a["total"]["reactive_power"] == pytest.approx(3 * 4600 * np.sin(np.radians(lag)), abs=2e-3 * 13800)


def test_reversed_polarity_is_undone() -> None:
    ct = CTSpec(kind=CTKind.VOLTAGE_OUTPUT, ratio=Ratio.model_validate("50/0.333"))
    mounted_backwards = [sensor_for(ct, fs=FS, f_nominal=50.0, reversed=True) for _ in range(3)]
    a = run(mounted_backwards, 10.0, 0.0, duration=2.0)
    assert a["total"]["active_power"] == pytest.approx(3 * 2300.0, rel=5e-4)


def test_current_dependent_phase_table_is_corrected() -> None:
    # IoTaWatt-style: 2° lead at 1 A falling to 0.2° at 50 A, ratio error +1 % at 1 A, 0 at 50 A
    table = PhaseTable(current=(1.0, 50.0), phase=(2.0, 0.2), ratio=(1.0, 0.0))
    for amps in (1.0, 25.0):
        sensors = [Sensor(CTKind.BUILT_IN, 1.0, FS, 50.0, table=table) for _ in range(3)]
        a = run(sensors, amps, 60.0, duration=2.0)
        # uncorrected, a 2° lead at PF 0.5 would move P by tan(60°)·2° ≈ 6 %
        assert a["L1"]["active_power"] == pytest.approx(230 * amps * 0.5, rel=2e-3)
        assert a["L1"]["angle_voltage_current"] == pytest.approx(60.0, abs=0.05)


def test_rogowski_reader_response_is_the_trapezoid_with_period_blockers() -> None:
    s = Sensor(CTKind.ROGOWSKI, 200.0, FS, 50.0)
    r = s.response(np.array([50.0, 250.0, 50.5]))
    # f_n and its harmonics pass the one-period blockers unchanged; the trapezoid is exact at f_n
    # (by construction) and (ωT)²/12 low at the 5th harmonic relative to it
    assert abs(r[0]) == pytest.approx(1.0, abs=1e-12)
    assert np.angle(r[0]) == pytest.approx(0.0, abs=1e-12)
    w5, w1 = 2 * np.pi * 250 / FS, 2 * np.pi * 50 / FS
    assert abs(r[1]) == pytest.approx((1 - w5**2 / 12) / (1 - w1**2 / 12), abs=1e-5)
    assert abs(r[2]) != pytest.approx(1.0, abs=1e-4)  # off-nominal: the blockers act, corrected per window


def test_site_file_ct_table_becomes_the_sensor_phase_table() -> None:
    ct = CTSpec.model_validate(
        {
            "kind": "built-in",
            "table": [{"current": 1, "phase": 2.0, "ratio": 1.0}, {"current": 50, "phase": 0.2}],
        }
    )
    s = sensor_for(ct, fs=FS, f_nominal=50.0)
    assert s.table is not None
    ph, ra = s.table.at(np.array([1.0, 25.5, 100.0]))
    assert ph.tolist() == pytest.approx([2.0, 1.1, 0.2])
    assert ra.tolist() == pytest.approx([1.0, 0.5, 0.0])


def test_ct_table_with_decreasing_currents_is_a_config_error_with_its_line() -> None:
    from meterhub.config.loader import ConfigError, parse_config

    text = """site: {name: t}
buses: [{id: adc, kind: waveform, port: 15030}]
devices: [{id: b, bus: adc, profile: meterhub-adc-8x3}]
circuits:
  - id: c
    device: b
    ct:
      kind: built-in
      table: [{current: 5, phase: 1}, {current: 2, phase: 0}]
"""
    with pytest.raises(ConfigError) as err:
        parse_config(text, "site.yaml")
    msg = str(err.value)
    assert "site.yaml:" in msg and "table" in msg and "must increase" in msg
