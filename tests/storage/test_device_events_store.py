"""The device event log and the filled ranges in every backend (see conftest.py): kept once however
often written, filtered by time, device and log; filled ranges found when they overlap a query."""

from __future__ import annotations

from meterhub.model.device_log import DeviceEvent, FilledRange
from meterhub.storage import Storage
from meterhub.storage.events import EventStore, EventWriter, _decode, _encode

T0 = 1_798_761_600  # 2027-01-01T00:00:00Z
DAY = 86400


def _store(storage: Storage) -> EventStore:
    assert isinstance(storage, EventStore)
    return storage


def test_device_events_are_kept_once_and_filtered(storage_backend: Storage) -> None:
    log = _store(storage_backend)
    down = DeviceEvent("m002", T0 + 10.0, "standard", 1, "power down")
    up = DeviceEvent("m002", T0 + 70.5, "standard", 2, "power up")
    cover = DeviceEvent("m002", T0 + 70.5, "alarm", 1, "cover opened")
    other = DeviceEvent("m003", T0 + 30.0, "alarm", 3, "clock battery low")
    writer = EventWriter(lambda: log)
    writer.device([down, up, cover])
    writer.device([down, up, other])  # read again after a restart: stored once
    assert writer.wait_written(10.0)
    writer.close()
    everything = log.device_events(T0, T0 + DAY, newest_first=False).rows
    assert everything == [down, other, up, cover]  # by time, then as written
    assert log.device_events(T0, T0 + DAY, device=["m002"], log=["alarm"]).rows == [cover]
    assert log.device_events(T0 + 11.0, T0 + 70.5).rows == [other]  # end excluded
    page = log.device_events(T0, T0 + DAY, limit=2)
    assert page.rows == [cover, up] and page.truncated  # newest first


def test_filled_ranges_are_kept_once_and_found_when_they_overlap(storage_backend: Storage) -> None:
    log = _store(storage_backend)
    energy = FilledRange("home/energy_active_import/total", T0 + 900.0, T0 + 7200.0, "m002")
    power = FilledRange("home/active_power/total", T0 + 900.0, T0 + 7200.0, "m002")
    log.write_events(filled=[energy, power])
    log.write_events(filled=[energy])  # the same fill reported twice
    series = "home/energy_active_import/total"
    assert log.filled_ranges(series, T0, T0 + DAY) == [energy]
    assert log.filled_ranges(series, T0 + 7200.0, T0 + DAY) == [energy]  # touches its last value
    assert log.filled_ranges(series, T0 + 1000.0, T0 + 2000.0) == [energy]  # inside it
    assert log.filled_ranges(series, T0, T0 + 899.0) == []  # before it
    assert log.filled_ranges("home/voltage/total", T0, T0 + DAY) == []
    assert energy.source == "meter-profile"


def test_spooled_device_records_come_back_equal() -> None:
    """What meets a PostgreSQL outage is spooled as JSON and read back the same."""
    e = DeviceEvent("m002", T0 + 0.01, "alarm", 2, "magnetic field")
    f = FilledRange("home/energy_active_import/total", T0, T0 + 900.0, "m002")
    assert _decode("device", _encode("device", e).payload) == ("device", e)
    assert _decode("filled", _encode("filled", f).payload) == ("filled", f)
