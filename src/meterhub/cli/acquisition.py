"""CLI commands of the acquisition area (mbmd-like): ``profiles list|show``, ``read``, ``scan``, ``simulate``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

import meterhub.drivers.modbus  # noqa: F401 - registers the Modbus source
from meterhub.cli._app import app
from meterhub.errors import ConfigurationError, DeviceError, InputError

__all__ = ["profiles_app"]

console = Console(stderr=True)
out = Console(highlight=False, soft_wrap=True)
log = logging.getLogger("meterhub.cli")

profiles_app = typer.Typer(
    help="Device profiles (register maps) shipped with meterhub.", no_args_is_help=True
)
app.add_typer(profiles_app, name="profiles")

TcpOpt = Annotated[str | None, typer.Option("--tcp", help="Modbus TCP endpoint HOST:PORT.")]
RtuTcpOpt = Annotated[
    str | None,
    typer.Option("--rtu-over-tcp", help="RTU frames over TCP (RS485-Ethernet converter) HOST:PORT."),
]
SerialOpt = Annotated[
    str | None, typer.Option("--serial", help="Serial device for Modbus RTU, e.g. /dev/ttyUSB0.")
]
BaudOpt = Annotated[int, typer.Option("--baud", help="Serial baud rate [bit/s].")]
ParityOpt = Annotated[str, typer.Option("--parity", help="Serial parity N, E or O.")]
StopOpt = Annotated[int, typer.Option("--stopbits", help="Serial stop bits 1 or 2.")]
TimeoutOpt = Annotated[float, typer.Option("--timeout", help="Response timeout [s].")]


def _host_port(text: str, option: str) -> tuple[str, int]:
    host, sep, port_s = text.rpartition(":")
    if not sep or not host:
        raise InputError(f"{option} {text!r}: expected HOST:PORT, e.g. 127.0.0.1:502")
    try:
        port = int(port_s)
    except ValueError:
        raise InputError(f"{option} {text!r}: port {port_s!r} is not a number") from None
    if not 0 <= port <= 65535:
        raise InputError(f"{option} {text!r}: port must be 0…65535")
    return host, port


def _endpoint(tcp: str | None, rtu_tcp: str | None, serial: str | None, *, required: bool = True) -> Any:
    # lazy: drivers, profiles and simulators load only for the command that needs them (CLI start-up)
    from meterhub.drivers.modbus.transport import TransportKind

    given = [(k, v) for k, v in (("tcp", tcp), ("rtu-over-tcp", rtu_tcp), ("serial", serial)) if v]
    if len(given) > 1:
        raise InputError("give only one of --tcp, --rtu-over-tcp, --serial")
    if not given:
        if required:
            raise InputError("give one of --tcp HOST:PORT, --rtu-over-tcp HOST:PORT or --serial DEV")
        return None
    kind, value = given[0]
    if kind == "serial":
        return TransportKind.RTU, "", 0, value
    host, port = _host_port(value, f"--{kind}")
    return (TransportKind.TCP if kind == "tcp" else TransportKind.RTU_OVER_TCP), host, port, None


def _profile_or_exit(profile_id: str) -> Any:
    # lazy: drivers, profiles and simulators load only for the command that needs them (CLI start-up)
    from meterhub.profiles import ProfileError, get_profile

    try:
        return get_profile(profile_id)
    except ProfileError as exc:
        raise InputError(str(exc)) from None


# -- profiles -------------------------------------------------------------------------------------
@profiles_app.command("list")
def profiles_list(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List every profile with its vendor, model and the reads a full poll needs."""
    # lazy: drivers, profiles and simulators load only for the command that needs them (CLI start-up)
    from meterhub.drivers.modbus.planner import plan_reads
    from meterhub.profiles import ProfileError, get_profile, profile_ids

    rows: list[dict[str, Any]] = []
    bad: list[str] = []
    for pid in profile_ids():
        try:
            p = get_profile(pid)
        except ProfileError as exc:
            bad.append(str(exc))
            continue
        pts = p.points()
        blocks = plan_reads(pts, max_block=p.defaults.max_block, max_gap=p.defaults.max_gap)
        rows.append(
            {
                "id": p.id,
                "vendor": p.vendor,
                "model": p.model,
                "kind": p.kind.value,
                "values": len(pts),
                "requests": len(blocks),
                "source": p.source,
            }
        )
    if as_json:
        out.print(json.dumps({"profiles": rows, "errors": bad}, indent=2, ensure_ascii=False))
    else:
        t = Table("vendor", "model", "kind", "values", "reads")
        t.add_column("id", no_wrap=True)
        for r in rows:
            t.add_row(r["vendor"], r["model"], r["kind"], str(r["values"]), str(r["requests"]), r["id"])
        out.print(t)
        for b in bad:
            console.print(f"[red]{b}[/]", highlight=False)
    if bad:
        raise typer.Exit(code=1)


@profiles_app.command("show")
def profiles_show(
    profile_id: Annotated[str, typer.Argument(help="Profile id, e.g. eastron-sdm630.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the profile as JSON.")] = False,
) -> None:
    """Show a profile: its source document, protocol defaults, register map and read plan."""
    # lazy: drivers, profiles and simulators load only for the command that needs them (CLI start-up)
    from meterhub.drivers.modbus.planner import plan_reads

    p = _profile_or_exit(profile_id)
    blocks = plan_reads(p.points(), max_block=p.defaults.max_block, max_gap=p.defaults.max_gap)
    if as_json:
        data = p.model_dump(mode="json", exclude_defaults=False)
        data["read_plan"] = [
            {"function": b.function.value, "start": b.start, "count": b.count} for b in blocks
        ]
        out.print(json.dumps(data, indent=2, ensure_ascii=False))
        return
    d = p.defaults
    out.print(f"[bold]{p.id}[/]  {p.vendor} {p.model}  ({p.kind.value})")
    out.print(f"source: {p.source}")
    if p.description:
        out.print(p.description)
    out.print(
        f"defaults: unit {d.unit}, {d.baud} {d.parity}{8}{d.stopbits}, {d.function.value} {d.type.value}, "
        f"word {d.word_order.value}, byte {d.byte_order.value}, ≤{d.max_block} registers/read"
    )
    t = Table("quantity", "phase", "ch", "table", "address", "hex", "type", "unit", "scale")
    for pt in p.points():
        e = p.registers[pt.index]
        if pt.order is not None and pt.order != e.order_start:
            continue
        t.add_row(
            pt.quantity + (f" ×{e.count}" if e.count > 1 else ""),
            pt.phase.value if pt.phase else "",
            str(pt.channel or ""),
            pt.function.value,
            str(pt.address),
            f"0x{pt.address:04X}",
            "bit" if pt.function.is_bit else pt.dtype.value,
            e.unit or "",
            f"{pt.factor:g}",
        )
    out.print(t)
    out.print(f"read plan: {len(blocks)} request(s): " + ", ".join(str(b) for b in blocks))


# -- read -----------------------------------------------------------------------------------------
@app.command("read")
def read_command(
    profile_id: Annotated[str, typer.Argument(help="Profile id, e.g. eastron-sdm630.")],
    tcp: TcpOpt = None,
    rtu_over_tcp: RtuTcpOpt = None,
    serial: SerialOpt = None,
    unit: Annotated[
        int | None, typer.Option("--unit", help="Modbus unit id [default: the profile's].")
    ] = None,
    baud: BaudOpt = 9600,
    parity: ParityOpt = "N",
    stopbits: StopOpt = 1,
    timeout: TimeoutOpt = 1.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    stats: Annotated[bool, typer.Option("--stats", help="Print requests and bytes on the wire.")] = False,
    hdlc: Annotated[bool, typer.Option("--hdlc", help="dlms: HDLC on --tcp instead of the wrapper.")] = False,
    client_sap: Annotated[int, typer.Option("--client-sap", help="dlms: client SAP (16 public).")] = 16,
    password_env: Annotated[
        str | None,
        typer.Option("--password-env", help="dlms: environment variable holding the LLS password."),
    ] = None,
) -> None:
    """Read every quantity of a profile once from a device and print it.

    ``meterhub read iec62056-21 --tcp HOST:PORT | --serial DEV`` does one IEC 62056-21 readout instead
    (--baud: the highest rate to switch to), ``meterhub read dlms --tcp HOST:PORT [--hdlc] [--client-sap N
    --password-env VAR] [--unit LOGICAL]`` one DLMS/COSEM read (:mod:`meterhub.cli.meters`)."""
    if profile_id == "dlms":
        # lazy: drivers, profiles and simulators load only for the command that needs them (CLI start-up)
        from meterhub.cli.meters import read_dlms

        if rtu_over_tcp is not None or not 1 <= client_sap <= 127:
            raise InputError("read dlms: --tcp HOST:PORT or --serial DEV, --client-sap 1…127")
        read_dlms(
            tcp=tcp,
            serial=serial,
            hdlc=hdlc,
            client_sap=client_sap,
            password_env=password_env,
            logical=unit if unit is not None else 1,
            timeout=timeout,
            as_json=as_json,
            stats=stats,
        )
        return
    if hdlc or client_sap != 16 or password_env is not None:
        raise InputError("--hdlc, --client-sap and --password-env are options of 'meterhub read dlms' only")
    if profile_id == "iec62056-21":
        # lazy: drivers, profiles and simulators load only for the command that needs them (CLI start-up)
        from meterhub.cli.meters import read_iec62056

        if rtu_over_tcp is not None or unit is not None or parity.upper() not in ("N", "E") or stopbits != 1:
            raise InputError("read iec62056-21: a 7E1 line (IEC 62056-21 §6.3.14) at --tcp or --serial only")
        read_iec62056(tcp=tcp, serial=serial, max_baud=baud, timeout=timeout, as_json=as_json, stats=stats)
        return
    # lazy: drivers, profiles and simulators load only for the command that needs them (CLI start-up)
    from meterhub.drivers.modbus.reader import DeviceReader
    from meterhub.drivers.modbus.transport import ModbusLink
    from meterhub.model import quantities

    p = _profile_or_exit(profile_id)
    kind, host, port, dev = _endpoint(tcp, rtu_over_tcp, serial)
    u = unit if unit is not None else p.defaults.unit
    if not 0 <= u <= 247:
        raise InputError(f"--unit {u}: must be 0…247")
    link = ModbusLink(
        kind,
        host=host,
        port=port,
        serial=dev,
        baud=baud,
        parity=parity.upper(),
        stopbits=stopbits,
        timeout=timeout,
    )
    reader = DeviceReader(p.id, p, u)

    async def go() -> Any:
        try:
            return await reader.read(link, stop_on_timeout=True)
        finally:
            await link.close()

    try:
        result = asyncio.run(go())
    except (
        Exception
    ) as exc:  # the link's own errors are typed; anything else is still reported, not a traceback
        raise DeviceError(f"{link.endpoint}: {exc}") from None
    for e in result.errors:
        console.print(f"[yellow]{e}[/]", highlight=False, soft_wrap=True)
    rows = []
    for pt, v in sorted(result.values.items(), key=lambda kv: (kv[0].function.read_code, kv[0].address)):
        r: dict[str, Any] = {
            "quantity": pt.quantity,
            "phase": pt.phase.value if pt.phase else None,
            "value": v,
            "unit": quantities.CATALOGUE[pt.quantity].unit,
        }
        if pt.channel is not None:
            r["channel"] = pt.channel
        if pt.order is not None:
            r["order"] = pt.order
        rows.append(r)
    st = {"requests": link.stats.requests, "bytes": link.stats.bytes}
    if not rows and not as_json:
        raise DeviceError(f"no values read from unit {u} at {link.endpoint}")
    if as_json:
        doc: dict[str, Any] = {"readings": rows, "stats": st}
        if result.errors:
            doc["errors"] = result.errors
        out.print(json.dumps(doc, indent=2))
    else:
        t = Table("quantity", "phase", "ch", "value", "unit")
        for r in rows:
            if "order" in r and r["order"] > 1:
                continue
            name = r["quantity"] + (" (h1…)" if "order" in r else "")
            t.add_row(name, r["phase"] or "", str(r.get("channel", "")), f"{r['value']:.6g}", r["unit"])
        out.print(t)
        if stats:
            out.print(f"{st['requests']} request(s), {st['bytes']} bytes on the wire")
    if not result.values:
        raise typer.Exit(code=1)


# -- scan -----------------------------------------------------------------------------------------
@app.command("scan")
def scan_command(
    tcp: TcpOpt = None,
    rtu_over_tcp: RtuTcpOpt = None,
    serial: SerialOpt = None,
    units: Annotated[
        str, typer.Option("--units", help="Unit ids to probe, e.g. 1-247 or 1-10,20.")
    ] = "1-247",
    baud: BaudOpt = 9600,
    parity: ParityOpt = "N",
    stopbits: StopOpt = 1,
    timeout: TimeoutOpt = 0.3,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Find the devices on a line, identify their profiles and flag duplicate addresses."""
    # lazy: drivers, profiles and simulators load only for the command that needs them (CLI start-up)
    from meterhub.drivers.modbus.scan import parse_units, scan_line
    from meterhub.drivers.modbus.transport import ModbusError, ModbusLink
    from meterhub.profiles import all_profiles

    try:
        unit_list = parse_units(units)
    except ValueError as exc:
        raise InputError(f"--units: {exc}") from None
    kind, host, port, dev = _endpoint(tcp, rtu_over_tcp, serial)
    link = ModbusLink(
        kind,
        host=host,
        port=port,
        serial=dev,
        baud=baud,
        parity=parity.upper(),
        stopbits=stopbits,
        timeout=timeout,
    )

    async def go() -> Any:
        try:
            return await scan_line(link, unit_list, all_profiles())
        finally:
            await link.close()

    try:
        result = asyncio.run(go())
    except ModbusError as exc:
        raise DeviceError(str(exc)) from None
    if as_json:
        out.print(
            json.dumps(
                {
                    "devices": [h.as_dict() for h in result.hits],
                    "silent": result.silent,
                    "duplicates": result.duplicate_units(),
                    "module_bus": result.module_bus,
                    "stats": link.stats.as_dict(),
                },
                indent=2,
            )
        )
        return
    t = Table("unit", "profile", "certainty", "info", "note")
    for h in result.hits:
        prof = ", ".join(h.profiles) or "unknown device"
        if h.likely and not h.sure and len(h.likely) > 1:
            prof = "one of: " + prof
        # "sure" only when a model-code register matched; a plausible value is a guess
        certainty = "sure (model code)" if h.sure else "likely (plausible values)" if h.likely else "-"
        info = ", ".join(f"{k}={v:.0f}" if v == int(v) else f"{k}={v:g}" for k, v in h.info.items())
        t.add_row(str(h.unit), prof, certainty, info, f"[red]{h.duplicate}[/]" if h.duplicate else "")
    out.print(t)
    for vu, table in result.module_bus.items():
        out.print(
            f"module bus of unit {vu}: {table['modules']} module(s), {table['consumption_w']:.2f} W of "
            f"{table['supply_w']:.2f} W supply"
        )
    for a in result.bus_duplicates:
        out.print(f"[red]address {a} is used by two modules on the module bus[/]")
    out.print(
        f"{len(result.hits)} device(s), {result.silent} silent unit id(s), "
        f"{len(result.duplicate_units())} probable duplicate address(es), {link.stats.requests} requests"
    )


# -- simulate -------------------------------------------------------------------------------------
@app.command("simulate")
def simulate_command(
    target: Annotated[str, typer.Argument(help="A profile id, or a site file (SITE.yaml) to simulate.")],
    tcp: TcpOpt = None,
    rtu_over_tcp: RtuTcpOpt = None,
    serial: SerialOpt = None,
    unit: Annotated[
        int | None, typer.Option("--unit", help="Unit id of a single profile [default: the profile's].")
    ] = None,
    baud: BaudOpt = 9600,
    parity: ParityOpt = "N",
    stopbits: StopOpt = 1,
    duration: Annotated[
        float | None, typer.Option("--duration", help="Stop after this many seconds.")
    ] = None,
    iec_tcp: Annotated[
        str | None, typer.Option("--iec-tcp", help="dlms-meter: its IEC 62056-21 optical port on HOST:PORT.")
    ] = None,
    hdlc_tcp: Annotated[
        str | None, typer.Option("--hdlc-tcp", help="dlms-meter: DLMS/COSEM over HDLC on HOST:PORT.")
    ] = None,
) -> None:
    """Serve simulated devices over Modbus (values from the physical load model) until Ctrl-C.

    A profile id serves one device; a site file serves each Modbus bus where it points, or — with
    --tcp/--rtu-over-tcp/--serial — all its Modbus devices on that one endpoint. ``dlms-meter`` serves
    seed 002's meter: DLMS/COSEM over the wrapper on --tcp and over HDLC on --hdlc-tcp, its optical port
    (IEC 62056-21, mode E switching to HDLC) on --iec-tcp and/or --serial.
    """
    if target == "dlms-meter":
        # lazy: drivers, profiles and simulators load only for the command that needs them (CLI start-up)
        from meterhub.cli.meters import simulate_dlms_meter

        if rtu_over_tcp is not None:
            raise InputError("--rtu-over-tcp is not an option of 'meterhub simulate dlms-meter'")
        simulate_dlms_meter(tcp=tcp, iec_tcp=iec_tcp, serial=serial, hdlc_tcp=hdlc_tcp, duration=duration)
        return
    if iec_tcp is not None or hdlc_tcp is not None:
        raise InputError("--iec-tcp and --hdlc-tcp are options of 'meterhub simulate dlms-meter' only")
    # lazy: drivers, profiles and simulators load only for the command that needs them (CLI start-up)
    from meterhub.sim.base import SimServer
    from meterhub.sim.modbus_server import ProfileDevice, serve_devices, wiring_for
    from meterhub.sim.physics import SiteModel

    ep = _endpoint(tcp, rtu_over_tcp, serial, required=False)
    is_site = target.endswith((".yaml", ".yml")) or Path(target).is_file()

    async def serve() -> None:
        servers: list[SimServer] = []
        if is_site:
            # lazy: drivers, profiles and simulators load only for the command that needs them (CLI start-up)
            from meterhub.config.loader import ConfigError, load_config

            try:
                cfg = load_config(target)
            except ConfigError as exc:
                raise ConfigurationError("\n".join(str(i) for i in exc.issues)) from None
            model = SiteModel(cfg)
            modbus = [b for b in cfg.buses if b.kind.value.startswith("modbus")]
            if not modbus:
                raise ConfigurationError(f"{target}: the site has no Modbus bus")
            if ep is not None:
                # lazy: drivers, profiles and simulators load only for the command that needs them (CLI start-up)
                from meterhub.profiles import get_profile

                devices: dict[int, ProfileDevice] = {}
                for d in cfg.devices:
                    if d.bus not in {b.id for b in modbus}:
                        continue
                    p = get_profile(d.profile)
                    u = d.unit if d.unit is not None else p.defaults.unit
                    if u in devices:
                        raise ConfigurationError(
                            f"devices {devices[u].device_id} and {d.id} both use unit {u}; "
                            "serve the buses separately (omit --tcp)"
                        )
                    devices[u] = ProfileDevice(d.id, p, model)
                kind, host, port, dev = ep
                servers.append(
                    await serve_devices(
                        devices,
                        kind=kind,
                        host=host,
                        port=port,
                        serial=dev,
                        baud=baud,
                        parity=parity.upper(),
                        stopbits=stopbits,
                    )
                )
            else:
                # lazy: drivers, profiles and simulators load only for the command that needs them (CLI start-up)
                from meterhub.sim.base import SimContext
                from meterhub.sim.modbus_server import modbus_simulator

                for b in modbus:
                    devs = [d for d in cfg.devices if d.bus == b.id]
                    servers.append(await modbus_simulator(SimContext(cfg, b, devs, model)))
        else:
            p = _profile_or_exit(target)
            if ep is None:
                raise InputError("give one of --tcp HOST:PORT, --rtu-over-tcp HOST:PORT or --serial DEV")
            model = SiteModel.single_meter(device_id="meter", wiring=wiring_for(p))
            u = unit if unit is not None else p.defaults.unit
            kind, host, port, dev = ep
            servers.append(
                await serve_devices(
                    {u: ProfileDevice("meter", p, model)},
                    kind=kind,
                    host=host,
                    port=port,
                    serial=dev,
                    baud=baud,
                    parity=parity.upper(),
                    stopbits=stopbits,
                )
            )
        for s in servers:
            out.print(f"simulating on {s.endpoint}")
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
            for s in servers:
                await s.close()

    asyncio.run(serve())
