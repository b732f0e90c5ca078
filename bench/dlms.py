"""DLMS/COSEM and IEC 62056-21 benchmark: prints one JSON object.

(a) ``load_profile`` — a month (``--days``) of 15-minute load profile with 8 capture objects (clock, A+,
    A−, R+, R−, U, I, P: 36 bytes of values per entry) read by range from the seed 002 meter emulator
    over HDLC on a simulated ``--baud`` line (every byte takes its wire time, 10 bits per character in
    each direction, half duplex: our client waits for each answer), once per HDLC information field
    length. Figures: bytes on the wire against the payload minimum (the values alone), the time the
    line is busy against the elapsed time (utilisation; issue 14 target ≥ 80 %), and the payload
    minimum's wire time against the elapsed time (how close to the line's physical limit the month
    arrives).
(b) ``baseline_line`` — the same simulated line carrying the payload minimum's byte count as one
    stream (no protocol): what the line model itself achieves on this machine, measured in the same run.
(c) ``iec62056_readout`` — one IEC 62056-21 mode C readout of the emulator on the same line model:
    bytes and time against its wire time (sign-on and identification at 300 bd, data at 9600 bd).

Usage: ``PYTHONPATH=src .venv/bin/python bench/dlms.py [--days 31] [--baud 9600]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from datetime import UTC, datetime, timedelta

from meterhub.drivers.dlms.client import DlmsClient
from meterhub.drivers.dlms.transport import HdlcTransport
from meterhub.drivers.iec62056.client import read_out
from meterhub.drivers.iec62056.link import TcpLink
from meterhub.sim.dlms import READER_PASSWORD, DlmsMeter, serve_dlms_tcp
from meterhub.sim.iec62056 import IecMeter, serve_iec_tcp

BITS_PER_CHAR = 10  # start + 8 data + stop (HDLC, 8N1) or start + 7 + parity + stop (IEC 62056-21, 7E1)
ROW_PAYLOAD = 12 + 4 * 5 + 2 * 2  # date-time 12, A+ A− R+ R− P 4 bytes each, U I 2 bytes each [bytes]


class LineLink(TcpLink):
    """A TCP link that takes the wire time of a serial line: each byte written or read costs
    ``BITS_PER_CHAR / baud`` seconds; ``busy`` sums it [s]."""

    def __init__(self, host: str, port: int, baud: int, *, follow_baud: bool = False) -> None:
        super().__init__(host, port)
        self.line_baud = baud
        self.follow_baud = follow_baud  # IEC 62056-21: the rate the readout switches to
        self.busy = 0.0

    @property
    def rate(self) -> int:
        """The line's rate now [bd]."""
        return self.baud if self.follow_baud else self.line_baud

    async def write(self, data: bytes) -> None:
        dt = len(data) * BITS_PER_CHAR / self.rate
        self.busy += dt
        await asyncio.sleep(dt)
        await super().write(data)

    async def read(self, timeout: float) -> bytes:
        data = await super().read(timeout)
        dt = len(data) * BITS_PER_CHAR / self.rate
        self.busy += dt
        await asyncio.sleep(dt)
        return data


async def load_profile(days: float, baud: int, max_info: int) -> dict[str, object]:
    meter = DlmsMeter()
    srv = await serve_dlms_tcp(meter, framing="hdlc")
    link = LineLink("127.0.0.1", srv.port, baud)
    transport = HdlcTransport(link, client_sap=0x11, timeout=30.0, max_info=max_info)
    client = DlmsClient(transport, password=READER_PASSWORD)
    end = datetime.now(UTC)
    try:
        t0 = time.perf_counter()
        await client.associate()
        rows = await client.read_profile("1.0.99.1.0.255", end - timedelta(days=days), end)
        elapsed = time.perf_counter() - t0
    finally:
        await client.release()
        await link.close()
        await srv.close()
    wire = link.stats.sent + link.stats.received
    payload = len(rows) * ROW_PAYLOAD
    return {
        "hdlc_max_info_bytes": max_info,
        "entries": len(rows),
        "capture_objects": len(rows[0]) if rows else 0,
        "payload_min_bytes": payload,
        "apdu_bytes": transport.apdu_bytes,
        "wire_bytes": wire,
        "wire_overhead": round(wire / payload, 3),
        "frames": transport.frames_sent + transport.frames_received,
        "data_blocks": client.blocks,
        "elapsed_s": round(elapsed, 2),
        "line_busy_s": round(link.busy, 2),
        "utilisation": round(link.busy / elapsed, 3),
        "payload_limit_s": round(payload * BITS_PER_CHAR / baud, 2),
        "share_of_physical_limit": round(payload * BITS_PER_CHAR / baud / elapsed, 3),
    }


async def baseline_line(n_bytes: int, baud: int) -> dict[str, object]:
    """``n_bytes`` through the line model in 1 kB answers to 6-byte requests (no protocol)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.read(6):
            writer.write(bytes(1024))
            await writer.drain()

    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    link = LineLink("127.0.0.1", srv.sockets[0].getsockname()[1], baud)
    got = 0
    t0 = time.perf_counter()
    while got < n_bytes:
        await link.write(b"next\r\n")
        answer = 0
        while answer < 1024:
            answer += len(await link.read(5.0))
        got += answer
    elapsed = time.perf_counter() - t0
    await link.close()
    srv.close()
    return {
        "bytes": got,
        "elapsed_s": round(elapsed, 2),
        "line_busy_s": round(link.busy, 2),
        "utilisation": round(link.busy / elapsed, 3),
    }


async def iec_readout(baud: int) -> dict[str, object]:
    srv = await serve_iec_tcp(IecMeter(mode="C"))
    link = LineLink("127.0.0.1", srv.port, 300, follow_baud=True)
    try:
        t0 = time.perf_counter()
        r = await read_out(link, max_baud=baud, timeout=5.0)
        elapsed = time.perf_counter() - t0
    finally:
        await link.close()
        await srv.close()
    return {
        "data_sets": len(r.datasets),
        "bytes_sent": r.sent,
        "bytes_received": r.received,
        "data_baud": r.baud,
        "elapsed_s": round(elapsed, 3),
        "wire_time_s": round(r.line_time(), 3),
        "utilisation": round(r.line_time() / elapsed, 3),
    }


async def main(days: float, baud: int) -> dict[str, object]:
    runs = [await load_profile(days, baud, n) for n in (128, 512)]
    payload = runs[0]["payload_min_bytes"]
    base = await baseline_line(payload if isinstance(payload, int) else 0, baud)
    iec = await iec_readout(baud)
    return {"days": days, "baud": baud, "load_profile": runs, "baseline_line": base, "iec62056_readout": iec}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--days", type=float, default=31.0)
    ap.add_argument("--baud", type=int, default=9600)
    a = ap.parse_args()
    print(json.dumps(asyncio.run(main(a.days, a.baud)), indent=2))
