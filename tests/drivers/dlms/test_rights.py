"""Seed 002's two LLS levels on the emulator, through our client: the administrator may SET, GET and
ACTION (clock synchronisation, billing by command), the reader GET and MD reset only; maximum demand
(Extended register, class 4) and the billing history (Profile generic 0.0.98.1.0.255)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from meterhub.drivers.dlms.client import EXTENDED_REGISTER, DlmsClient, decode_datetime
from meterhub.drivers.dlms.errors import DlmsAccessError
from meterhub.drivers.dlms.transport import WrapperTransport
from meterhub.drivers.iec62056.link import TcpLink
from meterhub.sim.dlms import ADMIN_PASSWORD, READER_PASSWORD, DlmsMeter, serve_dlms_tcp

ADMIN, READER = (0x01, ADMIN_PASSWORD), (0x11, READER_PASSWORD)


def _run(meter: DlmsMeter, who: tuple[int, bytes], body: Callable[[DlmsClient], Awaitable[Any]]) -> Any:
    async def go() -> Any:
        srv = await serve_dlms_tcp(meter, framing="wrapper")
        c = DlmsClient(WrapperTransport(TcpLink("127.0.0.1", srv.port), client_sap=who[0]), password=who[1])
        try:
            await c.associate()
            return await body(c)
        finally:
            await c.release()
            await srv.close()

    return asyncio.run(go())


def test_the_admin_sets_and_shifts_the_clock() -> None:
    meter = DlmsMeter()
    target = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=7)

    async def body(c: DlmsClient) -> tuple[datetime | None, datetime | None]:
        await c.set_clock(target)
        after_set = await c.read_clock()
        await c.shift_clock(-60)
        return after_set, await c.read_clock()

    after_set, after_shift = _run(meter, ADMIN, body)
    assert after_set is not None and after_shift is not None
    assert abs((after_set - target).total_seconds()) < 2
    assert abs((after_shift - target).total_seconds() + 60) < 2
    assert abs(meter.clock_offset - 360) < 2  # 7 min ahead, then 1 min back [s]


@pytest.mark.parametrize(
    ("call", "what"),
    [
        (lambda c: c.set_clock(datetime.now(UTC)), "SET 0.0.1.0.0.255 attribute 2: read-write-denied"),
        (lambda c: c.shift_clock(10), "ACTION 0.0.1.0.0.255 method 6: read-write-denied"),
        (lambda c: c.bill(), "ACTION 0.0.98.1.0.255 method 2: read-write-denied"),
    ],
)
def test_a_reader_cannot_set_or_act_beyond_md_reset(
    call: Callable[[DlmsClient], Awaitable[None]], what: str
) -> None:
    meter = DlmsMeter()

    async def body(c: DlmsClient) -> None:
        with pytest.raises(DlmsAccessError, match=what):
            await call(c)

    _run(meter, READER, body)
    assert meter.clock_offset == 0 and meter.billing_commands == []


def test_the_reader_resets_maximum_demand() -> None:
    meter = DlmsMeter()

    async def body(c: DlmsClient) -> tuple[Any, Any, Any]:
        before = await c.get(EXTENDED_REGISTER, "1.0.1.6.0.255", 2)
        when = decode_datetime(await c.get(EXTENDED_REGISTER, "1.0.1.6.0.255", 5))
        await c.reset_max_demand()
        return before, when, await c.get(EXTENDED_REGISTER, "1.0.1.6.0.255", 2)

    before, when, after = _run(meter, READER, body)
    expected, at = meter.max_demand(meter.t_start, meter.md_reset_at)
    assert before == round(expected) and before > 0  # the largest 15-min demand of 40 days [W]
    assert when is not None and when.timestamp() == at
    assert after == 0  # no whole demand interval since the reset


def test_billing_history_holds_monthly_snapshots_and_one_by_command() -> None:
    meter = DlmsMeter()

    async def body(c: DlmsClient) -> list[tuple[Any, ...]]:
        await c.bill()
        return await c.read_profile("0.0.98.1.0.255")

    rows = _run(meter, ADMIN, body)
    times = [decode_datetime(r[0]) for r in rows]
    assert all(t is not None for t in times)
    monthly = [t for t in times if t is not None and (t.day, t.hour, t.minute) == (1, 0, 0)]
    assert 1 <= len(monthly) <= 2  # 40 days of history hold one or two month ends
    assert len(rows) == len(monthly) + 1  # and the snapshot by command, last
    imports = [r[1] for r in rows]
    assert imports == sorted(imports)
    last = rows[-1]
    assert last[1] == round(meter.energy_at(meter.billing_commands[0]))


def test_the_object_list_shows_what_the_meter_offers() -> None:
    objects = _run(DlmsMeter(), READER, lambda c: c.object_list())
    names = {(c, ln) for c, _, ln in objects}
    assert (7, "1.0.99.1.0.255") in names and (7, "0.0.98.1.0.255") in names  # load profile, billing
    assert (7, "0.0.99.98.4.255") in names and (7, "0.0.99.98.1.255") in names  # power quality, alarms
    assert (3, "1.0.1.8.0.255") in names and (8, "0.0.1.0.0.255") in names and (4, "1.0.1.6.0.255") in names


def test_power_quality_and_alarm_logs_by_range() -> None:
    meter = DlmsMeter()
    end = datetime.now(UTC)
    start = end - timedelta(days=20)

    async def body(c: DlmsClient) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[Any]]:
        pq = await c.read_profile("0.0.99.98.4.255", start, end)
        alarms = await c.read_profile("0.0.99.98.1.255", start, end)
        return pq, alarms, await c.capture_objects("0.0.99.98.4.255")

    pq, alarms, cols = _run(meter, READER, body)
    assert [(o.class_id, o.obis) for o in cols] == [
        (8, "0.0.1.0.0.255"),
        (1, "0.0.96.11.4.255"),
        (3, "1.0.32.7.0.255"),  # the voltage captured with each entry [0.1 V]
    ]
    expected = meter.events("0.0.99.98.4.255", start.timestamp(), end.timestamp())
    assert [(decode_datetime(r[0]).timestamp(), r[1]) for r in pq] == expected  # type: ignore[union-attr]
    # an event (begin and end, 0.5 s apart) every 49 h in 20 days: sags and swells in turn
    assert len(pq) in (18, 19, 20) and {r[1] for r in pq} == {1, 2, 3, 4}
    assert {(r[1], r[2]) for r in pq} == {(1, 2070), (2, 1380), (3, 2530), (4, 2645)}
    assert len(alarms) in (2, 3)  # one every 9 d 2 h
