"""CLI for OBIS meters (issue 14): ``meterhub read iec62056-21 …`` and ``meterhub simulate dlms-meter …``.

The ``read`` and ``simulate`` commands (:mod:`meterhub.cli.acquisition`) hand these two targets here:
``read iec62056-21`` does one optical-port readout and prints its data sets with the catalogue
quantities the OBIS profile maps them to; ``simulate dlms-meter`` serves seed 002's meter (the physical
load model) on its optical port over TCP (``--iec-tcp``) and/or a serial port or pty (``--serial``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

from meterhub.errors import DeviceError, InputError

__all__ = ["DLMS", "DLMS_METER", "IEC62056_21", "read_dlms", "read_iec62056", "simulate_dlms_meter"]

#: The ``read`` target for an IEC 62056-21 readout and the ``simulate`` target of the meter emulator.
IEC62056_21 = "iec62056-21"
DLMS = "dlms"
DLMS_METER = "dlms-meter"

out = Console(highlight=False, soft_wrap=True)


def _host_port(text: str, option: str) -> tuple[str, int]:
    host, sep, port_s = text.rpartition(":")
    if not sep or not host or not port_s.isdigit() or not 0 <= int(port_s) <= 65535:
        raise InputError(f"{option} {text!r}: expected HOST:PORT with a port 0…65535, e.g. 127.0.0.1:2101")
    return host, int(port_s)


def read_iec62056(
    *,
    tcp: str | None,
    serial: str | None,
    max_baud: int,
    timeout: float,
    profile_id: str = "obis-generic",
    as_json: bool = False,
    stats: bool = False,
) -> None:
    """One IEC 62056-21 readout of the meter at ``--tcp`` or ``--serial``; print its values."""
    # lazy: the driver loads only for this command (CLI start-up)
    from meterhub.drivers.iec62056.client import read_out
    from meterhub.drivers.iec62056.errors import Iec62056Error
    from meterhub.drivers.iec62056.link import Link, SerialLink, TcpLink
    from meterhub.drivers.iec62056.protocol import obis_values
    from meterhub.model import quantities
    from meterhub.profiles.obis import get_obis_profile

    if (tcp is None) == (serial is None):
        raise InputError("give one of --tcp HOST:PORT (an optical bridge) or --serial DEV (an optical head)")
    profile = get_obis_profile(profile_id)
    link: Link = TcpLink(*_host_port(tcp, "--tcp")) if tcp is not None else SerialLink(str(serial))

    async def go() -> Any:
        try:
            return await read_out(link, max_baud=max_baud, timeout=timeout)
        finally:
            await link.close()

    try:
        r = asyncio.run(go())
    except Iec62056Error as exc:
        raise DeviceError(str(exc)) from None
    values, _ = obis_values(r.datasets)
    mapped, problems = profile.decode(values)
    by_code = {str(m.code): m for m in mapped}
    rows = []
    for ds in r.datasets:
        value, unit = ds.values[0] if ds.values else ("", None)
        row: dict[str, Any] = {"address": ds.address, "value": value, "unit": unit}
        m = next((by_code[k] for k in by_code if _same(k, ds.address)), None)
        if m is not None:
            row.update(
                quantity=m.quantity,
                phase=m.phase.value,
                catalogue_value=m.value,
                catalogue_unit=quantities.CATALOGUE[m.quantity].unit,
            )
        rows.append(row)
    ident = r.identification
    info = {
        "manufacturer": ident.manufacturer,
        "identification": ident.ident,
        "mode": ident.mode.value,
        "mode_e": ident.mode_e,
        "baud": r.baud,
        "serial_number": profile.serial_number(values),
    }
    st = {
        "bytes_sent": r.sent,
        "bytes_received": r.received,
        "duration_s": round(r.duration, 4),
        "line_time_s": round(r.line_time(), 4),
    }
    if as_json:
        out.print(json.dumps({"meter": info, "data": rows, "refused": problems, "stats": st}, indent=2))
        return
    out.print(
        f"{ident.manufacturer} {ident.ident}  mode {ident.mode.value}{' (mode E offered)' if ident.mode_e else ''}"
        f"  data at {r.baud} bd  serial {info['serial_number'] or '?'}"
    )
    t = Table("OBIS", "value", "unit", "quantity", "phase", "catalogue value")
    for row in rows:
        cv = f"{row['catalogue_value']:.10g} {row['catalogue_unit']}" if "quantity" in row else ""
        t.add_row(
            row["address"], row["value"], row["unit"] or "", row.get("quantity", ""), row.get("phase", ""), cv
        )
    out.print(t)
    for p in problems:
        out.print(f"refused: {p}")
    if stats:
        out.print(
            f"{r.sent} bytes sent, {r.received} received in {r.duration:.3f} s "
            f"(a 7E1 line needs {st['line_time_s']:.3f} s for them)"
        )


def read_dlms(
    *,
    tcp: str | None,
    serial: str | None,
    hdlc: bool,
    client_sap: int,
    password_env: str | None,
    logical: int,
    timeout: float,
    profile_id: str = "obis-generic",
    as_json: bool = False,
    stats: bool = False,
) -> None:
    """One DLMS/COSEM read: associate, read the serial number, the clock and every register of the OBIS
    profile the meter has (value × 10^scaler with its unit), release."""
    # lazy: the driver loads only for this command (CLI start-up)
    from meterhub.drivers.dlms.client import DlmsAccessError, DlmsClient, scale, unit_of
    from meterhub.drivers.dlms.source import SERIAL_NUMBER, _class_of, full_name
    from meterhub.drivers.dlms.transport import WRAPPER_PORT, ApduTransport, HdlcTransport, WrapperTransport
    from meterhub.drivers.iec62056.link import Link, SerialLink, TcpLink
    from meterhub.profiles.obis import ObisValue, get_obis_profile

    if (tcp is None) == (serial is None):
        raise InputError("give one of --tcp HOST:PORT (wrapper; with --hdlc: HDLC) or --serial DEV (HDLC)")
    password: bytes | None = None
    if password_env is not None:
        if password_env not in os.environ:
            raise InputError(f"--password-env {password_env}: the environment variable is not set")
        password = os.environ[password_env].encode("ascii", errors="replace")
    profile = get_obis_profile(profile_id)
    link: Link
    transport: ApduTransport
    if serial is not None:
        link = SerialLink(serial, binary=True, baud=9600)
        transport = HdlcTransport(link, client_sap=client_sap, server_logical=logical, timeout=timeout)
    else:
        host, port = _host_port(tcp or "", "--tcp")
        link = TcpLink(host, port or WRAPPER_PORT)
        transport = (
            HdlcTransport(link, client_sap=client_sap, server_logical=logical, timeout=timeout)
            if hdlc
            else WrapperTransport(link, client_sap=client_sap, server_sap=logical, timeout=timeout)
        )
    client = DlmsClient(transport, password=password)
    names = {full_name(c): c for c in profile.codes()}

    async def go() -> tuple[Any, Any, list[tuple[str, Any, Any]]]:
        try:
            await client.associate()
            serial_no: Any = None
            with contextlib.suppress(DlmsAccessError):
                serial_no = await client.get(1, SERIAL_NUMBER, 2)
            clock: Any = None
            with contextlib.suppress(DlmsAccessError):
                clock = await client.read_clock()
            listed = list(names)
            scalers = await client.get_with_list([(_class_of(names[n]), n, 3) for n in listed])
            present = [
                (n, su) for n, su in zip(listed, scalers, strict=True) if not isinstance(su, DlmsAccessError)
            ]
            values = await client.get_with_list([(_class_of(names[n]), n, 2) for n, _ in present])
            return serial_no, clock, [(n, su, v) for (n, su), v in zip(present, values, strict=True)]
        finally:
            await client.release()
            await link.close()

    serial_no, clock, rows = asyncio.run(go())  # DlmsError: a MeterhubError the CLI reports itself
    out_rows: list[dict[str, Any]] = []
    values: list[ObisValue] = []
    for n, su, v in rows:
        if isinstance(v, DlmsAccessError) or not isinstance(v, int | float):
            continue
        value, unit = scale(v, su), unit_of(su)
        values.append(ObisValue(names[n], repr(value), unit))
        out_rows.append({"logical_name": n, "value": value, "unit": unit})
    mapped, problems = profile.decode(values)
    by_code = {str(m.code): m for m in mapped}
    for row in out_rows:
        m = by_code.get(str(names[row["logical_name"]]))
        if m is not None:
            row.update(quantity=m.quantity, phase=m.phase.value, catalogue_value=m.value)
    serial_text = serial_no.decode("ascii", errors="replace") if isinstance(serial_no, bytes) else serial_no
    st = {"requests": client.requests, "apdu_bytes": transport.apdu_bytes, "wire_bytes": transport.wire_bytes}
    if as_json:
        doc = {
            "meter": {"serial_number": serial_text, "clock": clock.isoformat() if clock else None},
            "registers": out_rows,
            "refused": problems,
            "stats": st,
        }
        out.print(json.dumps(doc, indent=2))
        return
    out.print(f"serial {serial_text or '?'}  clock {clock.isoformat() if clock else '?'}")
    t = Table("logical name", "value", "unit", "quantity", "phase")
    for row in out_rows:
        t.add_row(
            row["logical_name"],
            f"{row['value']:.10g}",
            row["unit"],
            row.get("quantity", ""),
            row.get("phase", ""),
        )
    out.print(t)
    for p in problems:
        out.print(f"refused: {p}")
    if stats:
        out.print(
            f"{st['requests']} request(s), {st['apdu_bytes']} APDU bytes, {st['wire_bytes']} bytes on the wire"
        )


def _same(code_text: str, address: str) -> bool:
    # lazy: the profile module loads only for this command (CLI start-up)
    from meterhub.profiles.obis import ObisCode

    try:
        return str(ObisCode.parse(address)) == code_text
    except ValueError:
        return False


def simulate_dlms_meter(
    *,
    tcp: str | None,
    iec_tcp: str | None,
    serial: str | None,
    hdlc_tcp: str | None = None,
    mode: str = "C",
    duration: float | None,
) -> None:
    """Serve seed 002's meter until Ctrl-C (or ``duration`` [s]): DLMS/COSEM over the TCP wrapper
    (``--tcp``) and over HDLC on TCP (``--hdlc-tcp``), its optical port (IEC 62056-21 readout, and the
    mode E switch to HDLC) over TCP (``--iec-tcp``) and on a serial port or pty (``--serial``)."""
    # lazy: the simulators load only for this command (CLI start-up)
    from meterhub.sim.base import SimServer
    from meterhub.sim.dlms import DlmsMeter, hdlc_session, serve_dlms_tcp
    from meterhub.sim.iec62056 import IecMeter, serve_iec_serial, serve_iec_tcp

    if tcp is None and iec_tcp is None and serial is None and hdlc_tcp is None:
        raise InputError(
            "give --tcp HOST:PORT (DLMS wrapper, port 4059), --hdlc-tcp HOST:PORT, --iec-tcp HOST:PORT "
            "(optical port) and/or --serial PTY"
        )
    endpoints = {
        "--tcp": _host_port(tcp, "--tcp") if tcp is not None else None,
        "--hdlc-tcp": _host_port(hdlc_tcp, "--hdlc-tcp") if hdlc_tcp is not None else None,
        "--iec-tcp": _host_port(iec_tcp, "--iec-tcp") if iec_tcp is not None else None,
    }
    dlms = DlmsMeter()
    meter = IecMeter(mode=mode)

    async def mode_e(read: Any, write: Any) -> None:
        await hdlc_session(dlms, read, write)

    async def serve() -> None:
        servers: list[tuple[str, SimServer]] = []
        try:
            for option, ep in endpoints.items():
                if ep is None:
                    continue
                try:
                    if option == "--iec-tcp":
                        servers.append(
                            (
                                "IEC 62056-21 mode " + mode + ", mode E → HDLC",
                                await serve_iec_tcp(meter, *ep, hdlc=mode_e),
                            )
                        )
                    else:
                        framing = "wrapper" if option == "--tcp" else "hdlc"
                        servers.append(
                            (f"DLMS/COSEM {framing}", await serve_dlms_tcp(dlms, *ep, framing=framing))
                        )
                except OSError as exc:
                    raise InputError(f"{option} {ep[0]}:{ep[1]}: {exc.strerror or exc}") from None
            if serial is not None:
                try:
                    servers.append(
                        (
                            "IEC 62056-21 mode " + mode + ", mode E → HDLC",
                            await serve_iec_serial(meter, serial, hdlc=mode_e),
                        )
                    )
                except OSError as exc:
                    raise InputError(f"--serial {serial}: {exc}") from None
        except BaseException:
            for _, s in servers:
                await s.close()
            raise
        for what, s in servers:
            out.print(f"simulating dlms-meter ({what}) on {s.endpoint}")
        sys.stdout.flush()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        try:
            if duration is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), duration)
            else:
                await stop.wait()
        finally:
            for _, s in servers:
                await s.close()

    asyncio.run(serve())
