"""Analog scaling: 4–20 mA with NAMUR NE 43 limits, 0–10 V, 0–30 V, outputs."""

from __future__ import annotations

import numpy as np
import pytest

from meterhub.drivers.io.analog import AnalogStatus, output_signal, quality_of, scale_input
from meterhub.drivers.io.config import AnalogSignal
from meterhub.model.readings import Quality


def test_4_20_ma_scales_linearly_to_engineering_units():
    value, status = scale_input([4.0, 12.0, 20.0], AnalogSignal.MA_4_20, 0.0, 10.0)
    np.testing.assert_allclose(value, [0.0, 5.0, 10.0])
    assert status.tolist() == [AnalogStatus.OK] * 3


def test_4_20_ma_namur_ne43_bands():
    ma = [3.5, 3.6, 3.7, 3.9, 20.3, 20.7, 21.0, 22.0]
    value, status = scale_input(ma, AnalogSignal.MA_4_20, 0.0, 100.0)
    assert status.tolist() == [
        AnalogStatus.FAIL_LOW,  # open loop
        AnalogStatus.FAIL_LOW,  # ≤ 3.6 mA is failure information
        AnalogStatus.SATURATED,
        AnalogStatus.OK,  # 3.8…20.5 mA is measurement information
        AnalogStatus.OK,
        AnalogStatus.SATURATED,
        AnalogStatus.FAIL_HIGH,  # ≥ 21 mA
        AnalogStatus.FAIL_HIGH,
    ]
    assert np.isnan(value[0]) and np.isnan(value[-1])
    assert value[3] == 0.0 and value[4] == 100.0  # clipped to the range
    assert value[2] == 0.0


def test_4_20_ma_without_clamp_extrapolates_within_the_measuring_band():
    value, _ = scale_input(3.9, AnalogSignal.MA_4_20, 0.0, 16.0, clamp=False)
    assert float(value) == pytest.approx(-0.1)


def test_falling_range_scales_and_clamps():
    value, status = scale_input([4.0, 8.0, 20.4], AnalogSignal.MA_4_20, 100.0, 0.0)
    np.testing.assert_allclose(value, [100.0, 75.0, 0.0])
    assert status.tolist() == [0, 0, 0]


def test_0_10_v_and_0_30_v_tolerance_then_out_of_range():
    value, status = scale_input([5.0, 10.2, 10.3, -0.3], AnalogSignal.V_0_10, 0.0, 50.0)
    assert value[0] == 25.0
    assert value[1] == 50.0
    assert status.tolist() == [
        AnalogStatus.OK,
        AnalogStatus.SATURATED,  # within 2.5 % of the span
        AnalogStatus.OUT_OF_RANGE,
        AnalogStatus.OUT_OF_RANGE,
    ]
    value, status = scale_input(24.0, AnalogSignal.V_0_30, 0.0, 30.0)
    assert float(value) == 24.0 and int(status) == AnalogStatus.OK


def test_nan_input_is_out_of_range():
    value, status = scale_input(float("nan"), AnalogSignal.MA_0_20, 0.0, 1.0)
    assert np.isnan(value) and int(status) == AnalogStatus.OUT_OF_RANGE


def test_quality_mapping():
    assert quality_of(AnalogStatus.OK) is Quality.GOOD
    assert quality_of(AnalogStatus.SATURATED) is Quality.ESTIMATED
    assert quality_of(AnalogStatus.FAIL_LOW) is Quality.INVALID


def test_output_signal_scales_and_clips():
    np.testing.assert_allclose(
        output_signal([0.0, 75.0, 100.0, 150.0], AnalogSignal.MA_4_20, 0.0, 100.0), [4.0, 16.0, 20.0, 20.0]
    )
    assert float(output_signal(2.5, AnalogSignal.V_0_10, 0.0, 5.0)) == 5.0
    with pytest.raises(ValueError, match="finite"):
        output_signal(float("nan"), AnalogSignal.V_0_10, 0.0, 5.0)
