"""``meterhub analyze``: the metering engine over a recorded waveform file (CSV, NPZ, COMTRADE)."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path

import typer

from meterhub.cli._app import app
from meterhub.config.schema import Ratio


class _Wiring(StrEnum):
    P3W4 = "3P4W"
    P3W3 = "3P3W"
    P1W2 = "1P2W"
    P1W3 = "1P3W"
    DC = "DC"


class _VoltageInput(StrEnum):
    LN = "LN"
    LL = "LL"


@app.command()
def analyze(
    file: Path = typer.Argument(
        ..., help="record: .csv (header v_l1,…,i_l1,…[,i_n]), .npz, or COMTRADE .cfg"
    ),
    fs: float | None = typer.Option(None, "--fs", help="sampling rate [Hz] (required for CSV)"),
    f_nominal: int = typer.Option(50, "--f-nominal", help="nominal frequency 50 or 60 [Hz]"),
    wiring: _Wiring = typer.Option(_Wiring.P3W4, "--wiring", help="wiring system of the record"),
    declared_voltage: float | None = typer.Option(
        None,
        "--declared-voltage",
        help="declared L-N voltage for events [V] (default: nearest standard value)",
    ),
    voltage_input: _VoltageInput = typer.Option(
        _VoltageInput.LN, "--voltage-input", help="voltage columns are L-N or L-L"
    ),
    windows: bool = typer.Option(False, "--windows", help="add the per-window (10/12-cycle) series"),
    vt_ratio: str = typer.Option(
        "1/1", "--vt-ratio", help="voltage transformer ratio applied to v_*, e.g. 600/100"
    ),
    ct_ratio: str = typer.Option(
        "1/1", "--ct-ratio", help="current transformer ratio applied to i_*, e.g. 800/5"
    ),
    net_phases: bool = typer.Option(
        True,
        "--net-phases/--no-net-phases",
        help="split total energy by the sign of ΣP (netted) or per phase",
    ),
    json_out: bool = typer.Option(False, "--json", help="print JSON (the only output format)"),
) -> None:
    """Analyse a sampled V/I record: RMS, powers (IEEE 1459), harmonics, unbalance, events, energy."""
    # lazy: numpy and the waveform engine load only when a record is analysed (CLI start-up)
    import numpy as np

    from meterhub.metering.engine import VoltageInput
    from meterhub.metering.readers import RecordError, read_record
    from meterhub.metering.record import analyse
    from meterhub.model.topology import Wiring

    if f_nominal not in (50, 60):
        typer.echo(f"error: --f-nominal must be 50 or 60, got {f_nominal}", err=True)
        raise typer.Exit(2)
    if declared_voltage is not None and not (np.isfinite(declared_voltage) and 0 < declared_voltage <= 1e6):
        typer.echo(
            f"error: --declared-voltage must be a voltage above 0 V, got {declared_voltage:g}", err=True
        )
        raise typer.Exit(2)
    try:
        vt, ct = Ratio.model_validate(vt_ratio).value, Ratio.model_validate(ct_ratio).value
    except ValueError as exc:
        typer.echo(f"error: --vt-ratio/--ct-ratio: {exc}", err=True)
        raise typer.Exit(2) from None
    try:
        record = read_record(file, fs)
        record.voltages *= vt
        record.currents *= ct
        if record.neutral is not None:
            record.neutral *= ct
        with np.errstate(all="ignore"):  # a record's odd values become nulls in the JSON, not warnings
            result = analyse(
                record,
                wiring=Wiring(wiring.value),
                f_nominal=float(f_nominal),
                declared_voltage=declared_voltage,
                voltage_input=VoltageInput(voltage_input.value),
                windows=windows,
                net_phases=net_phases,
            )
    except RecordError as exc:
        msg = str(exc)
        typer.echo(f"error: {msg if msg.startswith(str(file)) else f'{file}: {msg}'}", err=True)
        raise typer.Exit(2) from None
    except (ValueError, ArithmeticError, IndexError, MemoryError) as exc:  # never a traceback
        typer.echo(f"error: {file}: cannot be analysed: {exc or type(exc).__name__}", err=True)
        raise typer.Exit(2) from None
    typer.echo(json.dumps(result, indent=None if windows else 2, allow_nan=False))
    del json_out  # JSON is the only format; the flag is accepted for explicitness
