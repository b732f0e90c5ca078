"""Our DLMS client against a peer made of the DLMS UA Green Book's own bytes.

No server library could serve as an independent peer (dlms-cosem has no server; gurux-dlms 1.0.203's
Python server fails, see docs/dlms.md), so this responder answers with the frames of the Green Book's
worked HDLC example (DLMS UA 1000-2, the HDLC clause's example of a connection and data exchange: the
client 0x10, the server with upper HDLC address 1 and lower HDLC address 17, the clock 0.0.1.0.0.255;
the same frames are quoted by OpenMUC jDLMS's FCS tests) and its AARE encoding examples (quoted by
dlms-cosem's ACSE tests as "Green book v10") — byte strings from the book, not from our encoder. Its HDLC framing is this
file's own (a bit-by-bit CRC-16/X.25 written here), and is first shown to reproduce the book's frames
byte for byte, so the client is checked against framing and APDUs we did not produce.

Where the book's exchange and ours differ, it is said: our SNRM proposes parameters (the book's has
none), our AARQ proposes another conformance block and PDU size, our GET carries invoke-id-and-priority
C1… (the book's 81: normal priority; the client does not match the invoke id with one request
outstanding), and our date-time says hundredths 00 where the book says FF (not specified).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone

import pytest

from meterhub.drivers.dlms.axdr import Enum
from meterhub.drivers.dlms.client import CLOCK, DlmsClient
from meterhub.drivers.dlms.errors import DlmsAssociationError
from meterhub.drivers.dlms.transport import HdlcTransport, WrapperTransport
from meterhub.drivers.iec62056.link import TcpLink

H = bytes.fromhex

# The book's HDLC example, each frame without its flags: format + length, addresses, control, HCS,
# information, FCS. Session 1 (client 21, server 00 02 00 23): connection and association.
GB_SNRM = H("A00A0002002321931871")
GB_UA = H("A023210002002373F6C58180140502008006020080070400000001080400000001CE6A")
GB_AARQ = H("A02E0002002321107ECBE6E600601DA109060760857405080101BE10040E01000000065F1F040000301DFFFFD4C5")
GB_AARE = H(
    "A03A2100020023309941E6E7006129A109060760857405080101A203"
    "020100A305A103020100BE10040E0800065F1F040000301D19000007"
    "0C52"
)
# Session 2 (client 75, server 95): the clock's attributes, (request, response) frame pairs.
GB_CLOCK = [
    (
        H("A0199575546835E6E600C0018100080000010000FF01000DFD"),
        H("A018759574E9E8E6E700C401810009060000010000FFFD49"),
    ),
    (
        H("A0199575767837E6E600C0018100080000010000FF020065D7"),
        H("A01E7595966F67E6E700C4018100090C07D20C04030A060BFF007800F330"),
    ),
    (
        H("A027957598B8DBE6E600C1018100080000010000FF0200090C07D20C04030A060BFF00780062FB"),
        H("A0107595B85101E6E700C501810036CF"),
    ),
    (H("A0199575BA183BE6E600C0018100080000010000FF0300BDCE"), H("A0137595DA8864E6E700C4018100100078563A")),
    (H("A0199575FE383FE6E600C0018100080000010000FF0400B583"), H("A01275951E1BF8E6E700C40181001100AC5B")),
    (H("A0199575546835E6E600C0018100080000010000FF0700DDA9"), H("A0127595744734E6E700C40181000F002D54")),
    (H("A0199575767837E6E600C0018100080000010000FF0800152A"), H("A0127595965BF0E6E700C401810003008DFD")),
    (H("A0199575980839E6E600C0018100080000010000FF0900CD33"), H("A0127595B82738E6E700C401810016012D07")),
]
# AARE encoding examples (Green Book, AARE without ciphering): accepted with a server PDU of 500 bytes;
# rejected-permanent, application-context-name not supported.
GB_AARE_ACCEPTED = H("6129A109060760857405080101A203020100A305A103020100BE10040E0800065F1F040000501F01F40007")
GB_AARE_WRONG_CONTEXT = H(
    "6129A109060760857405080101A203020101A305A103020102BE10040E0800065F1F040000501F01F40007"
)


def crc_x25(data: bytes) -> bytes:
    """CRC-16/X.25 (HDLC FCS, ISO/IEC 13239), bit by bit, least significant byte first on the wire."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    crc ^= 0xFFFF
    return bytes([crc & 0xFF, crc >> 8])


def split(frame: bytes) -> tuple[bytes, bytes, int, bytes]:
    """A frame (no flags) → (dst, src, control, information); asserts its length, HCS and FCS."""
    assert frame[0] & 0xF0 == 0xA0 and ((frame[0] & 0x07) << 8 | frame[1]) == len(frame)
    assert crc_x25(frame[:-2]) == frame[-2:], f"FCS of {frame.hex()}"
    pos = 2
    addresses = []
    for _ in range(2):
        start = pos
        while not frame[pos] & 1:
            pos += 1
        pos += 1
        addresses.append(frame[start:pos])
    control = frame[pos]
    pos += 1
    if len(frame) - 2 == pos:
        return addresses[0], addresses[1], control, b""
    assert crc_x25(frame[:pos]) == frame[pos : pos + 2], f"HCS of {frame.hex()}"
    return addresses[0], addresses[1], control, frame[pos + 2 : -2]


def build(dst: bytes, src: bytes, control: int, info: bytes = b"") -> bytes:
    """A frame (no flags) from its parts: the inverse of :func:`split`."""
    n = 2 + len(dst) + len(src) + 1 + 2
    n = n + (2 + len(info) if info else 0)
    head = bytes([0xA0 | (n >> 8), n & 0xFF]) + dst + src + bytes([control])
    if not info:
        return head + crc_x25(head)
    body = head + crc_x25(head) + info
    return body + crc_x25(body)


def test_this_files_framing_reproduces_every_frame_of_the_book() -> None:
    for frame in [GB_SNRM, GB_UA, GB_AARQ, GB_AARE, *[f for pair in GB_CLOCK for f in pair]]:
        assert build(*split(frame)) == frame


CLIENT = H("21")
SERVER = H("00020023")  # upper HDLC address 1 (logical device), lower 17 (physical)


class GreenBookMeter:
    """Answers our client's frames with the book's: UA and AARE as they stand, the clock's responses
    with their information fields re-framed for session 1's addresses and sequence numbers."""

    def __init__(self) -> None:
        self.received: list[tuple[int, bytes]] = []  # (control, APDU) of each frame from the client
        self.ns = 0  # the server's send sequence number

    def answer(self, frame: bytes) -> bytes | None:
        dst, src, control, info = split(frame)
        assert (dst, src) == (SERVER, CLIENT)
        if control == 0x93:  # SNRM: the book's UA, parameters 128/128 bytes, window 1
            self.ns = 0
            self.received.append((control, info))
            return GB_UA
        if control == 0x53:  # DISC
            return build(CLIENT, SERVER, 0x73)
        assert control & 1 == 0, f"an I frame expected, got control {control:02X}"
        assert info[:3] == H("E6E600")
        apdu = info[3:]
        self.received.append((control, apdu))
        client_ns = (control >> 1) & 7
        if apdu[0] == 0x60:  # AARQ: the book's AARE (its control 30: N(R) 1, N(S) 0)
            assert control == 0x10
            self.ns = 1
            return GB_AARE
        if apdu[0] == 0x62:  # RLRQ: not in the book's example; RLRE, normal
            reply = H("E6E700") + H("6303800100")
        else:
            reply = next(
                split(resp)[3]
                for req, resp in GB_CLOCK
                if split(req)[3][3:] == apdu[:2] + b"\x81" + apdu[3:]  # all but the invoke id
                or (apdu[0] == 0xC1 and split(req)[3][3:6] == H("C10181"))
            )
        out = build(CLIENT, SERVER, ((client_ns + 1) & 7) << 5 | 0x10 | self.ns << 1, reply)
        self.ns = (self.ns + 1) & 7
        return out


async def _serve(meter: GreenBookMeter) -> tuple[asyncio.Server, int]:
    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buf = bytearray()
        try:
            while chunk := await reader.read(4096):
                buf += chunk
                while len(buf) >= 3:
                    assert buf[0] == 0x7E
                    n = (buf[1] & 0x07) << 8 | buf[2]
                    if len(buf) < n + 2:
                        break
                    frame = bytes(buf[1 : n + 1])
                    assert buf[n + 1] == 0x7E
                    del buf[: n + 2]
                    reply = meter.answer(frame)
                    if reply is not None:
                        writer.write(b"\x7e" + reply + b"\x7e")
                        await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(session, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def test_our_client_reads_and_sets_the_clock_of_the_books_hdlc_example() -> None:
    meter = GreenBookMeter()

    async def go() -> dict[str, object]:
        server, port = await _serve(meter)
        transport = HdlcTransport(
            TcpLink("127.0.0.1", port), server_logical=1, server_physical=17, address_size=4, timeout=2.0
        )
        client = DlmsClient(transport)
        try:
            await client.associate()
            out: dict[str, object] = {"max_pdu": client.server_max_pdu, "conformance": client.conformance}
            out["params"] = transport.params
            out["logical_name"] = await client.get(CLOCK, "0.0.1.0.0.255", 1)
            out["time"] = await client.read_clock()
            await client.set_clock(datetime(2002, 12, 4, 10, 6, 11, tzinfo=timezone(timedelta(hours=-2))))
            for attribute in (3, 4, 7, 8, 9):
                out[f"a{attribute}"] = await client.get(CLOCK, "0.0.1.0.0.255", attribute)
            await client.release()
            return out
        finally:
            await transport.link.close()
            server.close()
            await server.wait_closed()

    got = asyncio.run(go())
    # the book's UA: max information field 128 bytes each way (2-byte values 00 80), window 1
    params = got["params"]
    assert (params.max_info_tx, params.max_info_rx, params.window_tx, params.window_rx) == (128, 128, 1, 1)  # type: ignore[attr-defined]
    assert got["max_pdu"] == 0x1900  # the book's AARE: server-max-receive-pdu-size 6400
    assert got["logical_name"] == H("0000010000FF")
    # 2002-12-04 (Wednesday) 10:06:11 local, deviation 120 min = UTC − local: 12:06:11 UTC
    assert got["time"] == datetime(2002, 12, 4, 12, 6, 11, tzinfo=UTC)
    assert (got["a3"], got["a4"], got["a7"], got["a8"], got["a9"]) == (120, 0, 0, False, Enum(1))

    kinds = [(c, a[:1].hex()) for c, a in meter.received]
    # SNRM (ours proposes 128/128 bytes, window 1), then the AARQ in the first I frame
    assert kinds[:2] == [(0x93, "81"), (0x10, "60")]
    # our AARQ differs from the book's only in the proposed conformance and PDU size
    book_aarq = split(GB_AARQ)[3][3:]
    ours = meter.received[1][1]
    assert len(ours) == len(book_aarq) and ours[:-7] == book_aarq[:-7]
    # the SET of the time: the book's request but for the invoke id and hundredths (00 here, FF there)
    book_set = split(GB_CLOCK[2][0])[3][3:]
    ours_set = next(a for _, a in meter.received if a[:1] == H("C1"))
    assert ours_set[3:] == book_set[3:-4] + H("00") + book_set[-3:]


def _wrapper_answer(aare: bytes):
    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        header = await reader.readexactly(8)
        await reader.readexactly(int.from_bytes(header[6:8], "big"))
        # wrapper (Green Book §7.3.3.4): version 1, source wPort = server 1, destination = client 16
        writer.write(H("0001") + H("0001") + H("0010") + len(aare).to_bytes(2, "big") + aare)
        await writer.drain()
        await reader.read()
        writer.close()

    return session


@pytest.mark.parametrize(
    ("aare", "accepted"),
    [(GB_AARE_ACCEPTED, True), (GB_AARE_WRONG_CONTEXT, False)],
    ids=["accepted", "refused"],
)
def test_our_client_reads_the_books_aare_examples_over_the_wrapper(aare: bytes, accepted: bool) -> None:
    async def go() -> DlmsClient | DlmsAssociationError:
        server = await asyncio.start_server(_wrapper_answer(aare), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = DlmsClient(WrapperTransport(TcpLink("127.0.0.1", port), timeout=2.0))
        try:
            await client.associate()
            return client
        except DlmsAssociationError as exc:
            return exc
        finally:
            await client.transport.disconnect()
            server.close()
            await server.wait_closed()

    got = asyncio.run(go())
    if accepted:
        assert isinstance(got, DlmsClient)
        assert got.server_max_pdu == 500 and got.conformance == H("00501F")
    else:
        assert isinstance(got, DlmsAssociationError)
        assert "association refused" in str(got)
        assert got.diagnostic == 2  # application-context-name not supported
