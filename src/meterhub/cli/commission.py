"""``meterhub commission``: the commissioning assistant from the command line (docs/commissioning.md).

The command reads the site's buses itself for ``--duration`` seconds (stop a gateway that polls the same
RS485 lines first: a Modbus line has one master; a running gateway answers the same checks at
``GET /api/v1/commissioning`` and on its Commissioning page). It keeps its own scratch data in
``DATA/commissioning`` (the gateway's database and registers are not touched), stops early once every
circuit has a verdict other than ``insufficient-load``, and prints a table per circuit or, with
``--json``, the API's document. ``--demo`` also serves the site's simulators (as ``meterhub demo``), with
``--fault`` wiring faults, so the checks can be tried without hardware.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from meterhub.cli._app import app
from meterhub.cli.core import _load_or_exit
from meterhub.config.faults import check_faults
from meterhub.config.schema import SiteConfig
from meterhub.errors import InputError

__all__ = ["commission"]

console = Console(highlight=False)


async def _observe(
    cfg: SiteConfig, data: Path, duration: float, demo: bool, faults: list[str]
) -> dict[str, Any]:
    """Acquire for up to ``duration`` seconds [s] and return the assistant's report."""
    # lazy: the runtime (every driver) and the simulators load only when the checks run (CLI start-up)
    from meterhub.runtime import Gateway
    from meterhub.runtime.commissioning import Commissioning
    from meterhub.runtime.demo import demo_site, start_simulators

    scratch = data / "commissioning"
    scratch.mkdir(parents=True, exist_ok=True)
    sims: list[Any] = []
    model = None
    if demo:
        cfg = demo_site(cfg)
        sims, model = await start_simulators(cfg, scratch, faults)
    gw = Gateway(cfg, data_dir=scratch, demo=demo)
    try:
        await gw.start()
        assistant = Commissioning(gw)
        end = time.monotonic() + duration
        while time.monotonic() < end:
            await asyncio.sleep(assistant.interval)
            assistant.sample()
            if all(r.verdict != "insufficient-load" for r in assistant.reports()):
                break
        return assistant.report()
    finally:
        await gw.stop()
        for s in sims:
            await s.close()
        if model is not None:
            model.save()


_LIGHT = {
    "ok": "[green]ok[/]",
    "suspect": "[bold red]suspect[/]",
    "insufficient-load": "[yellow]insufficient load[/]",
}


@app.command()
def commission(
    config: Annotated[Path, typer.Option("--config", "-c", help="Site file (YAML).")],
    data: Annotated[
        Path, typer.Option("--data", help="Data folder (scratch data in DATA/commissioning).")
    ] = Path("data"),
    json_out: Annotated[
        bool, typer.Option("--json", help="Print the report as JSON (as the API answers).")
    ] = False,
    duration: Annotated[
        float, typer.Option("--duration", min=5, max=3600, help="Observe at most this long [s].")
    ] = 120.0,
    demo: Annotated[
        bool, typer.Option("--demo", help="Also serve the site's simulators (as `meterhub demo`).")
    ] = False,
    fault: Annotated[
        list[str] | None,
        typer.Option(
            "--fault", help="With --demo: a simulated wiring fault, e.g. hvac:reverse:L2 (repeatable)."
        ),
    ] = None,
) -> None:
    """Check CT polarity, phase mapping, ratios and voltages of every circuit from live values; print the fixes."""
    cfg = _load_or_exit(config)
    faults = list(fault or [])
    if faults and not demo:
        raise InputError("--fault simulates wiring faults and needs --demo")
    try:
        check_faults(cfg, faults)
    except ValueError as exc:
        raise InputError(f"--fault: {exc}") from None
    report = asyncio.run(_observe(cfg, data, duration, demo, faults))
    if json_out:
        typer.echo(json.dumps(report, indent=2, ensure_ascii=False))
        return
    t = Table(title=escape(f"{cfg.site.name} — commissioning"), show_header=True)
    for col in ("circuit", "verdict", "finding", "confidence", "fix"):
        t.add_column(col)
    for c in report["circuits"]:
        light = _LIGHT.get(c["verdict"], c["verdict"])
        if not c["findings"]:
            t.add_row(escape(c["id"]), light, escape(c["note"]), "", "")
        for f in c["findings"]:
            where = f" {f['phase']}" if f["phase"] else ""
            t.add_row(
                escape(c["id"]),
                light,
                escape(f"{f['kind']}{where}"),
                f"{f['confidence']:.2f}",
                escape(f["fix"]["text"]),
            )
    console.print(t)
