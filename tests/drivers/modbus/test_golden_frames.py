"""Golden frames per real device profile (STYLE.md §5, §9): ``fixtures/<profile>.json`` holds, for a few key
registers, the vendor's address and type, the exact request and response bytes hand-encoded from the
vendor table (``fixtures/author_fixtures.py``, no meterhub code), and the value a person reads off them.

* the driver sends exactly the request bytes and decodes the response bytes to that value — over
  Modbus RTU-over-TCP (whole ADU, CRC included) and Modbus TCP (MBAP header + PDU) on a raw loopback
  socket that answers only the fixture's request;
* the simulator's own encoder produces exactly the fixture's response data for that value.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from meterhub.drivers.modbus.reader import DeviceReader
from meterhub.drivers.modbus.transport import ModbusLink, TransportKind
from meterhub.profiles import get_profile
from meterhub.profiles.schema import Point, Profile
from meterhub.sim.encoding import encode_registers, registers_to_bytes

FIXTURES = Path(__file__).parent / "fixtures"
REAL_PROFILES = [
    "abb-b21",
    "abb-b23",
    "carlo-gavazzi-em24",
    "carlo-gavazzi-em340",
    "chint-dtsu666",
    "eastron-sdm120",
    "eastron-sdm220",
    "eastron-sdm230",
    "eastron-sdm630",
    "eastron-sdm72d",
    "janitza-umg96rm",
    "kbr-multicomp-f144",
    "schneider-iem3255",
    "schneider-pm5300",
    "siemens-pac2200",
    "socomec-diris-a40",
    "sunspec-meter-213",
]


def _cases() -> list[Any]:
    out = []
    for profile_id in REAL_PROFILES:
        fx = json.loads((FIXTURES / f"{profile_id}.json").read_text(encoding="utf-8"))
        for reg in fx["registers"]:
            out.append(pytest.param(fx, reg, id=f"{profile_id}:{reg['name'].replace(' ', '_')}"))
    return out


CASES = _cases()


def _point(profile: Profile, reg: dict[str, Any]) -> Point:
    """The profile's point at the fixture's address, checked against the vendor table's type and order."""
    found = [
        p for p in profile.points() if p.function.value == reg["function"] and p.address == reg["address"]
    ]
    assert len(found) == 1, f"{profile.id} maps no single value at {reg['function']} {reg['address_hex']}"
    p = found[0]
    # the word order of a one-register value means nothing (a profile's default may say either)
    word = p.word_order.value if p.size > 1 else reg["word_order"]
    assert (p.dtype.value, word, p.byte_order.value) == (
        reg["type"],
        reg["word_order"],
        reg["byte_order"],
    ), f"{profile.id} {reg['address_hex']}: the profile's layout differs from the vendor table"
    return p


def test_every_real_vendor_profile_has_a_fixture_naming_its_document() -> None:
    have = sorted(p.stem for p in FIXTURES.glob("*.json"))
    assert have == REAL_PROFILES
    for profile_id in REAL_PROFILES:
        fx = json.loads((FIXTURES / f"{profile_id}.json").read_text(encoding="utf-8"))
        assert fx["profile"] == profile_id and len(fx["document"]) > 20
        assert fx["unit"] == get_profile(profile_id).defaults.unit
        assert len(fx["registers"]) >= 4


async def _serve_once(request: bytes, response: bytes, *, tcp: bool) -> tuple[asyncio.Server, list[bytes]]:
    """A raw loopback server that answers ``request`` (RTU ADU, or MBAP + PDU for TCP) with ``response``
    and records what it received; anything else gets no answer."""
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                if tcp:
                    head = await reader.readexactly(7)
                    frame = head + await reader.readexactly(int.from_bytes(head[4:6], "big") - 1)
                    seen.append(frame)
                    if frame[6:] == request:
                        body = response
                        writer.write(head[:4] + (len(body)).to_bytes(2, "big") + body)
                else:
                    frame = await reader.readexactly(len(request))
                    seen.append(frame)
                    if frame == request:
                        writer.write(response)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, seen


@pytest.mark.parametrize("framing", ["rtu-over-tcp", "tcp"])
@pytest.mark.parametrize(("fx", "reg"), CASES)
def test_driver_sends_the_vendor_request_and_decodes_the_vendor_response(
    fx: dict[str, Any], reg: dict[str, Any], framing: str
) -> None:
    profile = get_profile(fx["profile"])
    point = _point(profile, reg)
    unit = fx["unit"]
    tcp = framing == "tcp"
    if tcp:  # MBAP: the unit id, then the PDU
        request = bytes([unit]) + bytes.fromhex(reg["request_pdu"])
        response = bytes([unit]) + bytes.fromhex(reg["response_pdu"])
    else:
        request = bytes.fromhex(reg["request_adu_rtu"])
        response = bytes.fromhex(reg["response_adu_rtu"])

    async def go() -> tuple[float | None, list[bytes], list[str]]:
        server, seen = await _serve_once(request, response, tcp=tcp)
        port = server.sockets[0].getsockname()[1]
        kind = TransportKind.TCP if tcp else TransportKind.RTU_OVER_TCP
        link = ModbusLink(kind, port=port, timeout=1.0)
        try:
            result = await DeviceReader("dut", profile, unit, points=[point]).read(link)
        finally:
            await link.close()
            server.close()
            await server.wait_closed()
        return result.values.get(point), seen, result.errors

    value, seen, errors = asyncio.run(go())
    assert errors == []
    assert seen == [seen[0]] and (seen[0][6:] if tcp else seen[0]) == request
    expected = reg["expected"]["value"]
    assert value == pytest.approx(expected, rel=1e-12, abs=1e-12), reg["expected"]["unit"]


@pytest.mark.parametrize(("fx", "reg"), CASES)
def test_simulator_encodes_the_vendor_response_bytes_from_the_profile(
    fx: dict[str, Any], reg: dict[str, Any]
) -> None:
    point = _point(get_profile(fx["profile"]), reg)
    regs = encode_registers(
        reg["expected"]["value"],
        point.dtype,
        word_order=point.word_order,
        byte_order=point.byte_order,
        factor=point.factor,
    )
    assert registers_to_bytes(regs) == bytes.fromhex(reg["response_pdu"])[2:]
