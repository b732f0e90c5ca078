"""Our DLMS client against the seed 002 meter emulator (its own codec) over HDLC and the wrapper:
LLS enforced, public access limited, block transfer, selective access by range, HDLC segmentation
both ways; broken and silent peers give clear errors."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from meterhub.drivers.dlms.client import CLOCK, DlmsClient
from meterhub.drivers.dlms.errors import DlmsAccessError, DlmsAssociationError, DlmsFrameError, DlmsTimeout
from meterhub.drivers.dlms.transport import HdlcTransport, WrapperTransport
from meterhub.drivers.iec62056.link import TcpLink
from meterhub.sim.dlms import ADMIN_PASSWORD, READER_PASSWORD, DlmsMeter, serve_dlms_tcp


def _client(framing: str, port: int, sap: int, password: bytes | None, max_info: int = 128) -> DlmsClient:
    link = TcpLink("127.0.0.1", port)
    if framing == "hdlc":
        return DlmsClient(
            HdlcTransport(link, client_sap=sap, timeout=1.0, max_info=max_info), password=password
        )
    return DlmsClient(WrapperTransport(link, client_sap=sap, timeout=1.0), password=password)


@pytest.mark.parametrize("framing", ["hdlc", "wrapper"])
def test_reader_reads_registers_with_scaler_and_unit(framing: str) -> None:
    meter = DlmsMeter()

    async def go() -> dict[str, tuple[float, str]]:
        srv = await serve_dlms_tcp(meter, framing=framing)
        c = _client(framing, srv.port, 0x11, READER_PASSWORD)
        try:
            await c.associate()
            return {
                o: await c.read_register(o)
                for o in ("1.0.1.8.0.255", "1.0.32.7.0.255", "1.0.13.7.0.255", "1.0.14.7.0.255")
            }
        finally:
            await c.release()
            await srv.close()

    got = asyncio.run(go())
    v = meter.values()
    assert got["1.0.1.8.0.255"][1] == "Wh" and got["1.0.1.8.0.255"][0] == pytest.approx(
        v["1.0.1.8.0.255"], abs=2.0
    )
    assert got["1.0.32.7.0.255"][1] == "V" and got["1.0.32.7.0.255"][0] == pytest.approx(
        v["1.0.32.7.0.255"], abs=5.0
    )
    assert got["1.0.13.7.0.255"] == (pytest.approx(0.95), "")  # raw 950, scaler −3
    assert got["1.0.14.7.0.255"][1] == "Hz" and 49.9 < got["1.0.14.7.0.255"][0] < 50.1


@pytest.mark.parametrize(
    ("sap", "password", "reason"),
    [
        (0x11, b"wrong-pw", "authentication failure"),
        (0x11, None, "authentication required"),
        (0x01, READER_PASSWORD, "authentication failure"),
        (0x55, None, "no reason given"),
    ],
)
def test_lls_is_enforced(sap: int, password: bytes | None, reason: str) -> None:
    async def go() -> None:
        srv = await serve_dlms_tcp(DlmsMeter(), framing="hdlc")
        c = _client("hdlc", srv.port, sap, password)
        try:
            with pytest.raises(DlmsAssociationError, match=f"association refused: {reason}"):
                await c.associate()
        finally:
            await c.transport.disconnect()
            await c.transport.link.close()  # type: ignore[attr-defined]
            await srv.close()

    asyncio.run(go())


def test_the_public_client_reads_the_clock_but_not_the_registers() -> None:
    async def go() -> None:
        srv = await serve_dlms_tcp(DlmsMeter(), framing="wrapper")
        c = _client("wrapper", srv.port, 0x10, None)
        try:
            await c.associate()
            t = await c.read_clock()
            assert t is not None and abs((t - datetime.now(UTC)).total_seconds()) < 5
            with pytest.raises(DlmsAccessError, match="1.0.1.8.0.255 attribute 2: read-write-denied"):
                await c.get(3, "1.0.1.8.0.255", 2)
            admin = _client("wrapper", srv.port, 0x01, ADMIN_PASSWORD)
            await admin.associate()
            assert (await admin.read_register("1.0.1.8.0.255"))[1] == "Wh"
            await admin.release()
        finally:
            await c.release()
            await srv.close()

    asyncio.run(go())


@pytest.mark.parametrize("framing", ["hdlc", "wrapper"])
def test_a_month_of_load_profile_comes_in_blocks_and_by_range(framing: str) -> None:
    meter = DlmsMeter()
    end = datetime.now(UTC)
    start = end - timedelta(days=31)

    async def go() -> tuple[list[tuple[object, ...]], int, list[tuple[object, ...]]]:
        srv = await serve_dlms_tcp(meter, framing=framing)
        c = _client(framing, srv.port, 0x11, READER_PASSWORD)
        try:
            await c.associate()
            month = await c.read_profile("1.0.99.1.0.255", start, end)
            blocks = c.blocks
            day = await c.read_profile("1.0.99.1.0.255", end - timedelta(days=1), end)
            return month, blocks, day
        finally:
            await c.release()
            await srv.close()

    month, blocks, day = asyncio.run(go())
    assert len(month) in (31 * 96, 31 * 96 + 1)  # interval ends inside 31 days of 15 min
    assert blocks > 100  # ~300 kB of profile through 1 kB data blocks
    assert len(day) in (96, 97)
    assert month[-len(day) :] == day
    first_t = datetime(*_ymdhms(month[0][0]), tzinfo=UTC).timestamp()  # type: ignore[arg-type]
    assert month[0][1] == round(meter.energy_at(first_t))  # the meter's own interval value


def _ymdhms(raw: bytes) -> tuple[int, int, int, int, int, int]:
    return int.from_bytes(raw[:2], "big"), raw[2], raw[3], raw[5], raw[6], raw[7]


def test_hdlc_segmentation_both_ways_with_a_small_information_field() -> None:
    meter = DlmsMeter()

    async def go() -> tuple[int, list[object]]:
        srv = await serve_dlms_tcp(meter, framing="hdlc")
        c = _client("hdlc", srv.port, 0x11, READER_PASSWORD, max_info=32)
        try:
            await c.associate()  # the AARQ (62 bytes with LLC) already goes in two segments
            values = await c.get_with_list(
                [(3, f"1.0.{x}.255", 2) for x in ("1.8.0", "2.8.0", "32.7.0", "31.7.0", "16.7.0", "14.7.0")]
            )
            caps = await c.capture_objects("1.0.99.1.0.255")  # ~170 bytes back in 32-byte segments
            assert len(caps) == 8 and caps[0].class_id == CLOCK
            return c.transport.frames_sent, values  # type: ignore[attr-defined]
        finally:
            await c.release()
            await srv.close()

    frames, values = asyncio.run(go())
    assert frames > 12 and len(values) == 6 and all(isinstance(v, int) for v in values)


def test_a_corrupted_answer_is_a_frame_error() -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        writer.write(bytes.fromhex("7ea00703217300 00 7e".replace(" ", "")))  # UA with a wrong FCS
        await writer.drain()
        await asyncio.sleep(1)
        writer.close()

    async def go() -> None:
        srv = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        c = _client("hdlc", port, 0x10, None)
        try:
            with pytest.raises(DlmsFrameError, match="frame check sequence"):
                await c.associate()
        finally:
            await c.transport.link.close()  # type: ignore[attr-defined]
            srv.close()

    asyncio.run(go())


def test_a_silent_meter_is_a_timeout_naming_what_was_awaited() -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(3)
        writer.close()

    async def go() -> None:
        srv = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        c = _client("hdlc", port, 0x10, None)
        c.transport.timeout = 0.3  # type: ignore[attr-defined]
        try:
            with pytest.raises(DlmsTimeout, match=f"tcp://127.0.0.1:{port}: no UA to SNRM within 0.3 s"):
                await c.associate()
        finally:
            await c.transport.link.close()  # type: ignore[attr-defined]
            srv.close()

    asyncio.run(go())


def test_selective_access_across_the_autumn_dst_change() -> None:
    """Europe/Berlin, 25 Oct 2026: 03:00 CEST becomes 02:00 CET. 01:00 local (CEST) to 04:00 local (CET)
    is four real hours: 16 quarter-hour entries plus the first boundary, none lost or doubled."""
    berlin = ZoneInfo("Europe/Berlin")
    start = datetime(2026, 10, 25, 1, 0, tzinfo=berlin)
    end = datetime(2026, 10, 25, 4, 0, tzinfo=berlin)
    assert end.timestamp() - start.timestamp() == 4 * 3600
    meter = DlmsMeter(wall=lambda: datetime(2026, 11, 1, tzinfo=UTC).timestamp())

    async def go() -> list[tuple[object, ...]]:
        srv = await serve_dlms_tcp(meter, framing="wrapper")
        c = _client("wrapper", srv.port, 0x11, READER_PASSWORD)
        try:
            await c.associate()
            return await c.read_profile("1.0.99.1.0.255", start, end)
        finally:
            await c.release()
            await srv.close()

    rows = asyncio.run(go())
    assert len(rows) == 17  # 4 h × 4 intervals + the entry at the start instant
    first = datetime(*_ymdhms(rows[0][0]), tzinfo=UTC)  # type: ignore[arg-type]
    last = datetime(*_ymdhms(rows[-1][0]), tzinfo=UTC)  # type: ignore[arg-type]
    assert first.isoformat() == "2026-10-24T23:00:00+00:00"  # 01:00 CEST
    assert last.isoformat() == "2026-10-25T03:00:00+00:00"  # 04:00 CET


def test_the_demand_register_gives_both_averages_with_its_times() -> None:
    """Class 5 (Blue Book §4.3.4) of the emulator, 1.0.1.4.0.255: block demand over 15 min. Half-way
    through a period the current average is half the period's mean power (energy so far over the
    whole period); the last average is the closed period's ΔE · 3600 / 900 s, captured at its end."""
    start = 1_789_999_200.0  # 2026-09-21 14:00:00 UTC, a period start
    now = start + 450.0
    meter = DlmsMeter(wall=lambda: now)

    async def go() -> object:
        srv = await serve_dlms_tcp(meter, framing="wrapper")
        c = _client("wrapper", srv.port, 0x11, READER_PASSWORD)
        try:
            await c.associate()
            return await c.read_demand_register("1.0.1.4.0.255")
        finally:
            await c.release()
            await srv.close()

    got = asyncio.run(go())
    assert start % 900 == 0
    last_w = (meter.energy_at(start) - meter.energy_at(start - 900)) * 3600 / 900
    assert got.unit == "W" and got.period == 900 and got.periods == 1  # type: ignore[attr-defined]
    assert got.current == pytest.approx(meter.power(start + 450) / 2, abs=1.0)  # type: ignore[attr-defined]
    assert got.last == pytest.approx(last_w, abs=1.0)  # type: ignore[attr-defined]
    assert got.capture_time == got.start == datetime.fromtimestamp(start, UTC)  # type: ignore[attr-defined]
    assert got.status == 0  # type: ignore[attr-defined]


def test_the_public_client_cannot_read_the_demand_register() -> None:
    meter = DlmsMeter()

    async def go() -> None:
        srv = await serve_dlms_tcp(meter, framing="wrapper")
        c = _client("wrapper", srv.port, 0x10, None)
        try:
            await c.associate()
            await c.read_demand_register("1.0.1.4.0.255")
        finally:
            await c.release()
            await srv.close()

    with pytest.raises(DlmsAccessError, match="1.0.1.4.0.255 attribute 2: read-write-denied"):
        asyncio.run(go())
