"""Digital inputs: NO/NC, function labels, debounce, change events with timestamps."""

from __future__ import annotations

import pytest

from meterhub.drivers.io.config import Contact, DigitalPoint
from meterhub.drivers.io.digital import DigitalInput, active_state


def di(**kw: object) -> DigitalInput:
    base: dict[str, object] = {"id": "q1", "device": "dio1", "kind": "digital", "channel": 1}
    base.update(kw)
    return DigitalInput(DigitalPoint.model_validate(base))


@pytest.mark.parametrize(
    ("closed", "contact", "active"),
    [
        (True, Contact.NO, True),
        (False, Contact.NO, False),
        (True, Contact.NC, False),
        (False, Contact.NC, True),
    ],
)
def test_active_state_applies_contact_type(closed, contact, active):
    assert active_state(closed, contact) is active


def test_breaker_sd_trip_is_an_event_with_the_edge_time():
    q = di(function="breaker-sd")
    first = q.update(100.0, False)
    assert first is not None and first.label == "normal" and first.previous is None
    ev = q.update(160.5, True)
    assert ev is not None
    assert (ev.ts, ev.active, ev.label, ev.previous) == (160.5, True, "tripped", "normal")
    assert str(ev) == "q1 (breaker-sd): normal → tripped"
    assert q.changes == 1
    r = q.reading(161.0)
    assert r is not None and (r.quantity, r.value, r.circuit) == ("digital_input", 1.0, "q1")


def test_breaker_of_on_nc_contact_reports_closed_when_contact_opens():
    q = di(function="breaker-of", contact="NC")
    q.update(0.0, True)
    assert q.label == "open"
    ev = q.update(1.0, False)
    assert ev is not None and ev.label == "closed"


def test_repeated_state_gives_no_event():
    q = di(function="door")
    q.update(0.0, False)
    assert q.update(1.0, False) is None
    assert q.update(2.0, False) is None
    assert q.changes == 0


def test_debounce_ignores_short_change_and_accepts_held_change_at_its_start():
    q = di(function="run", debounce=2.0)
    q.update(0.0, False)
    assert q.update(10.0, True) is None  # pending
    assert q.update(11.0, False) is None  # back within 2 s: a bounce
    assert q.label == "stopped"
    assert q.update(20.0, True) is None
    assert q.settle(21.9) is None
    ev = q.settle(22.0)
    assert ev is not None and ev.ts == 20.0 and ev.label == "running"


def test_time_going_back_is_refused_with_the_point_named():
    q = di()
    q.update(5.0, True)
    with pytest.raises(ValueError, match="digital input q1"):
        q.update(4.0, False)


def test_no_reading_before_the_first_state():
    assert di().reading(0.0) is None


def test_run_hours_count_accepted_running_time_and_never_decrease():
    q = di(function="run", debounce=2.0)
    seen = []
    # polled every second: running from 0 to 100 s, a 1 s dropout at 50 s (a bounce), stopped at 100 s
    for t in range(0, 131):
        closed = t < 100 and t != 50
        q.update(float(t), closed)
        seen.append(q.active_time)
    assert seen == sorted(seen)
    assert q.active_time == 100.0  # 0…100 s; the bounce at 50 s does not stop the clock
    assert q.hours_reading(130.0).value == pytest.approx(100.0 / 3600)
    assert q.hours_reading(130.0).quantity == "operating_hours"


def test_run_hours_resume_from_a_stored_value_without_counting_the_unknown_gap():
    run = DigitalPoint.model_validate(
        {"id": "pump", "device": "dio1", "kind": "digital", "channel": 2, "function": "run"}
    )
    q = DigitalInput(run, active_time=7200.0)
    q.update(1000.0, True)  # first sample after a restart: the time before is unknown
    q.update(1060.0, True)
    assert q.active_time == 7260.0
    with pytest.raises(ValueError, match="negative"):
        DigitalInput(run, active_time=-1.0)
