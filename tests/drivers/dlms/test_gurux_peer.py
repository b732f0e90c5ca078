"""gurux-dlms (GPL, test-only peer) as an independent client against our meter emulator, over the TCP
wrapper and over HDLC: association with LLS, registers with scaler and unit, the clock, the load profile
by range; a wrong password refused."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from gurux_dlms import GXByteBuffer, GXDateTime, GXDLMSClient, GXReplyData
from gurux_dlms.enums import Authentication, InterfaceType
from gurux_dlms.objects import GXDLMSClock, GXDLMSData, GXDLMSProfileGeneric, GXDLMSRegister

from meterhub.sim.dlms import READER_PASSWORD, DlmsMeter, serve_dlms_tcp

INTERFACE = {"wrapper": InterfaceType.WRAPPER, "hdlc": InterfaceType.HDLC}


class _Emulator:
    """The emulator served from a thread with its own event loop (gurux's client is blocking)."""

    def __init__(self, framing: str) -> None:
        self.meter = DlmsMeter()
        self.framing = framing
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.port = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(serve_dlms_tcp(self.meter, framing=self.framing))
        self.port = self.server.port
        self.ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self.server.close())
        self.loop.close()

    def __enter__(self) -> _Emulator:
        self.thread.start()
        self.ready.wait(5)
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class _Gurux:
    """gurux's client on a blocking socket, following its examples' read loop (readDLMSPacket)."""

    def __init__(self, port: int, framing: str, client: int, password: bytes | None) -> None:
        auth = Authentication.LOW if password else Authentication.NONE
        self.client = GXDLMSClient(True, client, 1, auth, password, INTERFACE[framing])
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)

    def _packet(self, data: Any, reply: GXReplyData) -> None:
        if data is None:
            return
        self.sock.sendall(bytes(data))
        rd = GXByteBuffer()
        while not self.client.getData(rd, reply, None):
            chunk = self.sock.recv(4096)
            assert chunk, "the emulator closed the connection"
            rd.set(chunk)

    def _block(self, data: Any, reply: GXReplyData) -> None:
        if isinstance(data, list):
            for it in data:
                reply.clear()
                self._block(it, reply)
            return
        self._packet(data, reply)
        while reply.isMoreData():
            self._packet(self.client.receiverReady(reply), reply)

    def connect(self) -> None:
        reply = GXReplyData()
        data = self.client.snrmRequest()
        if data:
            self._block(data, reply)
            self.client.parseUAResponse(reply.data)
        reply = GXReplyData()
        self._block(self.client.aarqRequest(), reply)
        self.client.parseAareResponse(reply.data)

    def read(self, obj: Any, attr: int) -> Any:
        reply = GXReplyData()
        self._block(self.client.read(obj, attr), reply)
        return self.client.updateValue(obj, attr, reply.value)

    def rows_by_range(self, pg: GXDLMSProfileGeneric, start: datetime, end: datetime) -> Any:
        reply = GXReplyData()
        self._block(self.client.readRowsByRange(pg, start, end), reply)
        return self.client.updateValue(pg, 2, reply.value)

    def close(self) -> None:
        try:
            reply = GXReplyData()
            self._block(self.client.releaseRequest(), reply)
            self._block(self.client.disconnectRequest(), GXReplyData())
        finally:
            self.sock.close()


@pytest.fixture(params=["wrapper", "hdlc"])
def emulator(request: pytest.FixtureRequest) -> Iterator[_Emulator]:
    with _Emulator(request.param) as e:
        yield e


def test_gurux_reads_registers_clock_and_serial(emulator: _Emulator) -> None:
    g = _Gurux(emulator.port, emulator.framing, 0x11, READER_PASSWORD)
    try:
        g.connect()
        serial = GXDLMSData("0.0.96.1.0.255")
        g.read(serial, 2)
        energy = GXDLMSRegister("1.0.1.8.0.255")
        g.read(energy, 3)
        g.read(energy, 2)
        voltage = GXDLMSRegister("1.0.32.7.0.255")
        g.read(voltage, 3)
        g.read(voltage, 2)
        clock = GXDLMSClock("0.0.1.0.0.255")
        g.read(clock, 2)
    finally:
        g.close()
    expected = emulator.meter.values()
    assert bytes(serial.value) == b"20260002"
    assert energy.scaler == 1 and int(energy.unit) == 30  # scaler 10^0, unit Wh (Blue Book Table 4)
    assert energy.value == pytest.approx(expected["1.0.1.8.0.255"], abs=2.0)  # one poll's energy at most
    assert voltage.scaler == pytest.approx(0.1) and int(voltage.unit) == 35  # 10^-1 V
    assert voltage.value == pytest.approx(expected["1.0.32.7.0.255"], abs=5.0)
    assert isinstance(clock.time, GXDateTime)
    assert abs(clock.time.value.timestamp() - datetime.now(UTC).timestamp()) < 5


def test_gurux_reads_the_load_profile_by_range(emulator: _Emulator) -> None:
    g = _Gurux(emulator.port, emulator.framing, 0x11, READER_PASSWORD)
    end = datetime.now(UTC).replace(second=0, microsecond=0)
    start = end - timedelta(hours=6)
    try:
        g.connect()
        pg = GXDLMSProfileGeneric("1.0.99.1.0.255")
        g.read(pg, 3)
        g.read(pg, 4)
        g.rows_by_range(pg, start, end)
    finally:
        g.close()
    assert pg.capturePeriod == 900
    assert [str(o.logicalName) for o, _ in pg.captureObjects][:3] == [
        "0.0.1.0.0.255",
        "1.0.1.8.0.255",
        "1.0.2.8.0.255",
    ]
    assert len(pg.captureObjects) == 8
    assert 23 <= len(pg.buffer) <= 25  # 6 h of 15-min entries, interval ends inside the range
    times = [row[0].value.timestamp() for row in pg.buffer]
    assert all(b - a == 900 for a, b in zip(times, times[1:], strict=False))
    assert all(t % 900 == 0 for t in times)
    imports = [row[1] for row in pg.buffer]
    assert imports == sorted(imports)  # a register never goes backwards
    first_t = times[0]
    assert imports[0] == round(emulator.meter.energy_at(first_t))


def test_gurux_with_a_wrong_password_is_refused(emulator: _Emulator) -> None:
    g = _Gurux(emulator.port, emulator.framing, 0x11, b"wrong!!!")
    try:
        with pytest.raises(Exception, match="(?i)authentication"):
            g.connect()
    finally:
        g.sock.close()
