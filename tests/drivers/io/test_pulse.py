"""S0 pulse counting: debounce (seed 001: ≥ 100 ms), NO/NC, counter wrap, index and rate."""

from __future__ import annotations

import pytest

from meterhub.drivers.io.config import Contact, PulsePoint
from meterhub.drivers.io.pulse import EdgeCounter, PulseMeter, PulseState, counter_delta
from meterhub.model.topology import Phase


def point(**kw: object) -> PulsePoint:
    base: dict[str, object] = {"id": "p1", "device": "conc", "kind": "pulse", "channel": 1, "weight": 1.0}
    base.update(kw)
    return PulsePoint.model_validate(base)


def test_edge_counter_counts_a_pulse_once_it_held_100_ms():
    c = EdgeCounter(contact=Contact.NO, debounce=0.1)
    c.edge(10.0, True)
    assert c.count == 0  # not yet confirmed
    c.edge(10.15, False)  # held 150 ms
    assert c.count == 1
    assert c.pulse_times == [10.0]


def test_edge_counter_ignores_a_50_ms_bounce():
    c = EdgeCounter(contact=Contact.NO, debounce=0.1)
    c.edge(1.0, True)
    c.edge(1.05, False)  # 50 ms closure: contact bounce
    c.settle(5.0)
    assert c.count == 0


def test_edge_counter_bounce_inside_a_pulse_does_not_split_it():
    c = EdgeCounter(contact=Contact.NO, debounce=0.1)
    c.edge(0.0, True)
    c.edge(0.2, False)  # 20 ms opening inside the pulse
    c.edge(0.22, True)
    c.edge(0.5, False)
    c.settle(1.0)
    assert c.count == 1
    c.edge(1.0, True)
    c.settle(1.1)
    assert c.count == 2
    assert c.pulse_times == [0.0, 1.0]


def test_edge_counter_nc_contact_counts_openings():
    c = EdgeCounter(contact=Contact.NC, debounce=0.1)
    c.edge(0.0, True)  # closed at rest: no pulse
    c.edge(2.0, False)  # opens: pulse
    c.edge(2.3, True)
    assert c.count == 1
    assert c.pulse_times == [2.0]


def test_edge_counter_settle_confirms_a_long_pulse_without_the_trailing_edge():
    c = EdgeCounter(contact=Contact.NO, debounce=0.1)
    c.edge(3.0, True)
    assert c.settle(3.05) == 0
    assert c.settle(3.1) == 1
    assert c.count == 1


def test_edge_counter_rejects_debounce_below_100_ms_and_time_going_back():
    with pytest.raises(ValueError, match="0.1 s"):
        EdgeCounter(debounce=0.05)
    c = EdgeCounter()
    c.edge(5.0, True)
    with pytest.raises(ValueError, match="earlier"):
        c.edge(4.0, False)


def test_config_refuses_debounce_below_100_ms():
    with pytest.raises(ValueError, match="greater than or equal to 0.1"):
        point(debounce=0.02)


@pytest.mark.parametrize(
    ("previous", "raw", "bits", "expected"),
    [
        (100, 105, 16, (5, False)),
        (65530, 4, 16, (10, False)),  # 65530 → 65535 is 5, → 0 is 6, → 4 is 10
        (4294967290, 3, 32, (9, False)),
        (50000, 12, 16, (-49988, True)),  # far from the top: not a roll-over, the counter went down
        (7, 7, 32, (0, False)),
    ],
)
def test_counter_delta_unwraps_rollover_and_reports_any_other_decrease(previous, raw, bits, expected):
    assert counter_delta(previous, raw, bits) == expected


def test_counter_delta_max_wrap_decides_between_rollover_and_decrease():
    assert counter_delta(60000, 100, 16, max_wrap=6000) == (5636, False)  # 65536 − 60000 + 100
    assert counter_delta(60000, 100, 16, max_wrap=5000) == (-59900, True)


def test_counter_delta_rejects_a_value_wider_than_the_counter():
    with pytest.raises(ValueError, match="16 bits"):
        counter_delta(0, 70000, 16)


def test_pulse_meter_electricity_index_in_wh_from_kwh_weight():
    m = PulseMeter(point(medium="electricity", unit="kWh", weight=0.001, initial=1234.5))
    m.counter(0.0, 1000)
    m.counter(10.0, 1250)  # 250 pulses of 1 Wh
    assert m.state.pulses == 250
    assert m.index == pytest.approx(1234.5 * 1000 + 250.0)
    # 250 Wh in 10 s = 250 * 3600 / 10 W
    assert m.rate(10.0) == pytest.approx(90_000.0)


def test_pulse_meter_gas_litres_to_cubic_metres_and_flow_in_m3_per_h():
    m = PulseMeter(point(medium="gas", unit="l", weight=10.0))
    m.edge(0.0, True)
    m.edge(0.2, False)
    m.edge(36.0, True)
    m.edge(36.2, False)
    readings = {r.quantity: r for r in m.readings(36.5)}
    assert readings["pulse_count"].value == 2.0
    assert readings["volume_gas"].value == pytest.approx(0.02)  # 2 × 10 l
    # one pulse of 0.01 m³ per 36 s = 1 m³/h
    assert readings["volume_flow"].value == pytest.approx(1.0)
    assert readings["volume_flow"].phase is Phase.TOTAL
    assert readings["volume_gas"].circuit == "p1"


def test_pulse_rate_decays_when_pulses_stop_and_is_zero_after_timeout():
    m = PulseMeter(point(medium="water", unit="m3", weight=0.001, rate_timeout=600))
    for t in (0.0, 10.0):
        m.edge(t, True)
        m.edge(t + 0.5, False)
    assert m.rate(15.0) == pytest.approx(0.36)  # 1 l / 10 s = 0.36 m³/h
    assert m.rate(50.0) == pytest.approx(0.001 * 3600 / 40)  # at most one pulse in the 40 s since
    assert m.rate(700.0) == 0.0


def test_pulse_rate_unknown_until_two_pulses():
    m = PulseMeter(point())
    m.edge(0.0, True)
    m.settle(1.0)
    assert m.rate(1.0) is None
    assert [r.quantity for r in m.readings(1.0)] == ["pulse_count", "energy_active_import"]


def test_pulse_index_follows_the_device_counter_down_and_unwraps_only_the_rollover():
    """The total is the unwrapped device counter: a decrease that is not a roll-over is passed on as it
    is (energy/registers decides whether it is a reset), the roll-over at 2^16 is unwrapped."""
    m = PulseMeter(point(counter_bits=16, unit="Wh", weight=1.0))
    values = []
    for ts, raw in [(0, 40000), (1, 40010), (2, 3), (3, 65535), (4, 2)]:
        # 40000 → 40010: +10; 40010 → 3: down by 40007 (restart?); 3 → 65535: +65532;
        # 65535 → 2: a roll-over, +3
        m.counter(float(ts), raw)
        values.append(m.index)
    assert values == [0.0, 10.0, -39997.0, 25535.0, 25538.0]
    assert m.state.resets == 1


def test_a_bad_read_and_its_recovery_cancel_out_and_make_no_rate_spike():
    """One all-zero answer from a concentrator at 5000 pulses, then 5001: counted 1 pulse, not 5001."""
    m = PulseMeter(point(counter_bits=32, unit="Wh", weight=1.0))
    for ts, raw in [(0.0, 4998), (10.0, 4999), (20.0, 5000), (30.0, 0), (40.0, 5001)]:
        m.counter(ts, raw)
    assert m.state.pulses == 3 and m.index == 3.0
    assert m.rate(40.0) is None  # the step back up is not a rate
    m.counter(50.0, 5002)
    assert m.rate(50.0) == pytest.approx(1 * 3600 / 10)  # 1 Wh in 10 s = 360 W


def test_pulse_state_round_trips_keeps_a_negative_total_and_refuses_non_integers():
    s = PulseState(pulses=12, last_raw=65000, resets=1)
    assert PulseState.from_dict(s.to_dict()) == s
    assert PulseState.from_dict({"pulses": -40, "last_raw": 3}) == PulseState(-40, 3, 0)
    with pytest.raises(ValueError, match="last_raw = '12' is not a whole number"):
        PulseState.from_dict({"pulses": 1, "last_raw": "12"})


def test_pulse_meter_continues_from_restored_state():
    m = PulseMeter(point(unit="Wh", weight=2.0), PulseState(pulses=100, last_raw=500))
    m.counter(0.0, 510)
    assert m.index == pytest.approx(220.0)
