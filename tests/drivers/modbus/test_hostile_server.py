"""A malicious Modbus server (a raw asyncio socket server on 127.0.0.1) against the real link: wrong
transaction ids, duplicated and late frames, cut-off frames, oversized byte counts, garbage. Each
misbehaviour is a typed error whose text says what happened (or is silently dropped when the right
answer still comes), it is counted, nothing from pymodbus or asyncio reaches the log, and the next
good poll reads the right values — one bad frame never makes a device unreadable."""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Callable

import pytest

from meterhub.drivers.base import DeviceStatus
from meterhub.drivers.modbus.errors import ModbusCrcError, ModbusError, ModbusFrameError, ModbusTimeout
from meterhub.drivers.modbus.framing import crc16
from meterhub.drivers.modbus.reader import DeviceReader
from meterhub.drivers.modbus.scheduler import LineScheduler, PolledDevice
from meterhub.drivers.modbus.transport import ModbusLink, TransportKind
from meterhub.errors import DeviceError, DeviceTimeoutError
from meterhub.profiles import get_profile
from meterhub.profiles.schema import Function

TIMEOUT = 0.3

#: A reply to request number n (1-based): the bytes to send, given the request's transaction id.
Behaviour = Callable[[int, int], bytes]


def tcp_frame(tid: int, regs: tuple[int, ...], *, unit: int = 1, byte_count: int | None = None) -> bytes:
    data = struct.pack(f">{len(regs)}H", *regs)
    pdu = bytes([4, len(data) if byte_count is None else byte_count]) + data
    return struct.pack(">HHHB", tid, 0, len(pdu) + 1, unit) + pdu


def rtu_frame(regs: tuple[int, ...], *, unit: int = 1, byte_count: int | None = None) -> bytes:
    data = struct.pack(f">{len(regs)}H", *regs)
    adu = bytes([unit, 4, len(data) if byte_count is None else byte_count]) + data
    return adu + crc16(adu)


def answer(n: int) -> tuple[int, int]:
    """The two registers a good answer to request n carries: different for every request, so an answer
    taken for the wrong request shows."""
    return (0x1000 + n, 0x2000 + n)


async def hostile(rtu: bool, behave: Behaviour) -> tuple[asyncio.Server, int]:
    count = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal count
        try:
            while True:
                if rtu:
                    await reader.readexactly(8)
                    tid = 0
                else:
                    head = await reader.readexactly(7)
                    await reader.readexactly(int.from_bytes(head[4:6], "big") - 1)
                    tid = int.from_bytes(head[:2], "big")
                count += 1
                out = behave(count, tid)
                if out:
                    writer.write(out)
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def run_reads(rtu: bool, behave: Behaviour, n: int) -> tuple[list[list[int] | ModbusError], ModbusLink]:
    """n reads of input 0…1 from unit 1, each result or error, pausing 50 ms between them (late bytes
    of a bad answer have time to arrive)."""

    async def go() -> tuple[list[list[int] | ModbusError], ModbusLink]:
        server, port = await hostile(rtu, behave)
        kind = TransportKind.RTU_OVER_TCP if rtu else TransportKind.TCP
        link = ModbusLink(kind, port=port, timeout=TIMEOUT)
        out: list[list[int] | ModbusError] = []
        try:
            for _ in range(n):
                try:
                    out.append(await link.read(Function.INPUT, 1, 0, 2))
                except ModbusError as exc:
                    out.append(exc)
                await asyncio.sleep(0.05)
        finally:
            await link.close()
            server.close()
            await server.wait_closed()
        return out, link

    return asyncio.run(go())


@pytest.fixture(autouse=True)
def _no_library_noise(caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG)
    yield
    foreign = [r for r in caplog.records if not r.name.startswith("meterhub")]
    assert foreign == [], [f"{r.name}: {r.getMessage()}" for r in foreign]
    assert "Traceback" not in caplog.text


def test_a_wrong_transaction_id_is_dropped_and_named_in_the_timeout_then_the_next_poll_reads() -> None:
    out, link = run_reads(False, lambda n, tid: tcp_frame(tid + 100 if n == 1 else tid, answer(n)), 2)
    err = out[0]
    assert isinstance(err, ModbusTimeout) and isinstance(err, DeviceTimeoutError)
    assert str(err) == (
        "no response from unit 1 within 0.3 s; a frame with transaction id 101 (not 1) dropped"
    )
    assert out[1] == list(answer(2))
    assert (link.stats.requests, link.stats.timeouts, link.stats.errors, link.stats.discarded) == (2, 1, 0, 1)


def test_a_stray_frame_before_the_right_answer_is_dropped_and_the_answer_taken() -> None:
    stale = tcp_frame(999, (0xDEAD, 0xBEEF))
    out, link = run_reads(False, lambda n, tid: stale + tcp_frame(tid, answer(n)), 2)
    assert out == [list(answer(1)), list(answer(2))]
    assert link.stats.discarded == 2 and link.stats.errors == link.stats.timeouts == 0


@pytest.mark.parametrize("rtu", [False, True], ids=["tcp", "rtu-over-tcp"])
def test_a_duplicated_answer_never_answers_the_next_request(rtu: bool) -> None:
    def behave(n: int, tid: int) -> bytes:
        frame = rtu_frame(answer(n)) if rtu else tcp_frame(tid, answer(n))
        return frame + frame if n == 1 else frame  # the first answer comes twice

    out, link = run_reads(rtu, behave, 3)
    assert out == [list(answer(1)), list(answer(2)), list(answer(3))]
    assert link.stats.discarded == 1 and link.stats.errors == link.stats.timeouts == 0


def test_a_late_answer_arriving_between_requests_is_dropped_on_rtu() -> None:
    """The converter delivers request 1's answer again 20 ms later — after the link has its answer and
    before it sends request 2: dropped, and request 2 gets its own answer."""

    async def go() -> tuple[list[list[int]], ModbusLink]:
        count = 0

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal count
            try:
                while True:
                    await reader.readexactly(8)
                    count += 1
                    writer.write(rtu_frame(answer(count)))
                    await writer.drain()
                    if count == 1:
                        await asyncio.sleep(0.02)
                        writer.write(rtu_frame(answer(count)))  # the late copy
                        await writer.drain()
            except (asyncio.IncompleteReadError, ConnectionError):
                pass

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        link = ModbusLink(
            TransportKind.RTU_OVER_TCP, port=server.sockets[0].getsockname()[1], timeout=TIMEOUT
        )
        try:
            first = await link.read(Function.INPUT, 1, 0, 2)
            await asyncio.sleep(0.1)  # the late copy arrives while nothing is in flight
            second = await link.read(Function.INPUT, 1, 0, 2)
        finally:
            await link.close()
            server.close()
            await server.wait_closed()
        return [first, second], link

    out, link = asyncio.run(go())
    assert out == [list(answer(1)), list(answer(2))]
    assert link.stats.discarded == 1


@pytest.mark.parametrize(
    ("rtu", "reply", "error", "text"),
    [
        (
            False,
            lambda tid: tcp_frame(tid, answer(1))[:-1],
            ModbusFrameError,
            "unit 1: cut-off frame: 12 byte(s) and no more within 0.3 s: 00 01 00 00 00 07 01 04 04 10 01 20",
        ),
        (
            True,
            lambda tid: rtu_frame(answer(1))[:-2],
            ModbusFrameError,
            "unit 1: cut-off frame: 7 byte(s) and no more within 0.3 s: 01 04 04 10 01 20 01",
        ),
        (
            False,
            lambda tid: tcp_frame(tid, answer(1), byte_count=200),
            ModbusFrameError,
            "unit 1: byte count 200 but 4 data bytes follow",
        ),
        (
            True,
            lambda tid: rtu_frame(answer(1), byte_count=200),
            ModbusFrameError,
            "unit 1: byte count 200 for 2 registers asked (4 expected)",
        ),
        (
            False,
            lambda tid: tcp_frame(tid, (1, 2, 3)),
            ModbusFrameError,
            "unit 1: byte count 6 for 2 registers asked (4 expected)",
        ),
        (
            True,
            lambda tid: rtu_frame(answer(1))[:-1] + b"\x00",
            ModbusCrcError,
            "unit 1: CRC error: 01 04 04 10 01 20 01 76 00 ends in 76 00, the CRC of its content is 76 84",
        ),
        (
            False,
            lambda tid: b"\x55" * 9,
            ModbusFrameError,
            "not a Modbus TCP header: 55 55 55 55 55 55 55 (protocol id 21845, length 21845)",
        ),
        (
            True,
            lambda tid: b"\x01\x55\x55\x55\x55",
            ModbusFrameError,
            "unit 1: an answer with function code 85 (0x55) cannot be framed",
        ),
        (
            False,
            lambda tid: tcp_frame(tid, answer(1), unit=7),
            ModbusFrameError,
            "unit 1: answer from unit 7 to a request for unit 1",
        ),
    ],
    ids=[
        "tcp-cut-off",
        "rtu-cut-off",
        "tcp-oversized-byte-count",
        "rtu-oversized-byte-count",
        "tcp-too-many-registers",
        "rtu-crc",
        "tcp-garbage",
        "rtu-garbage",
        "tcp-wrong-unit",
    ],
)
def test_a_bad_frame_is_our_named_error_counted_and_the_next_poll_reads(
    rtu: bool, reply: Callable[[int], bytes], error: type[ModbusError], text: str
) -> None:
    def behave(n: int, tid: int) -> bytes:
        if n == 1:
            return reply(tid)
        return rtu_frame(answer(n)) if rtu else tcp_frame(tid, answer(n))

    out, link = run_reads(rtu, behave, 2)
    err = out[0]
    assert type(err) is error and isinstance(err, DeviceError)
    assert str(err) == text
    assert out[1] == list(answer(2))
    assert (link.stats.requests, link.stats.errors) == (2, 1)


def test_a_device_behind_a_hostile_line_logs_once_per_state_change_with_counters_in_its_status(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Three silent polls, then duplicated and stray frames: one 'offline' line, one 'back online'
    line, the counters in DeviceStatus, the values of the good polls right."""
    profile = get_profile("eastron-sdm120")
    points = [p for p in profile.points() if p.address == 0]  # voltage L1 only: one register pair
    v = struct.unpack(">HH", struct.pack(">f", 230.0))

    def behave(n: int, tid: int) -> bytes:
        if n <= 3:
            return b""  # silent
        good = tcp_frame(tid, v)
        return tcp_frame(tid + 7, (0, 0)) + good + good  # a stray before, a duplicate after

    async def go() -> tuple[DeviceStatus, list[float], ModbusLink]:
        server, port = await hostile(False, behave)
        link = ModbusLink(TransportKind.TCP, port=port, timeout=TIMEOUT)
        st = DeviceStatus("m", "m", profile.id, "b")
        dev = PolledDevice(DeviceReader("m", profile, 1, points=points), st, 1.0)
        sched = LineScheduler(link, [dev], retries=1)
        values: list[float] = []
        try:
            for _ in range(6):
                res = await sched.poll(dev)
                values.extend(res.values.values())
                await asyncio.sleep(0.02)
        finally:
            await link.close()
            server.close()
            await server.wait_closed()
        return st, values, link

    st, values, link = asyncio.run(go())
    assert values == [230.0, 230.0, 230.0]
    assert (st.online, st.requests, st.errors, st.timeouts) == (True, 6, 3, 3)
    lines = [
        r.getMessage() for r in caplog.records if r.name == "meterhub.modbus" and r.levelno >= logging.INFO
    ]
    assert lines == [
        "device m is offline after 2 failed polls: device m (unit 1, eastron-sdm120) input registers 0…1: "
        "no response from unit 1 within 0.3 s (2 requests, 2 errors, 2 timeouts so far)",
        "device m is back online after 3 failed polls (4 requests, 3 errors, 3 timeouts so far)",
    ]
    # the stray before each of the 3 good answers, and the duplicates after the first two (dropped before
    # the next request; the last one is still waiting when the test stops)
    assert link.stats.discarded == 5
