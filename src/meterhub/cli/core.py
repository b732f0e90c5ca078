"""Core commands: ``demo``, ``run``, ``check-config`` and ``--version``.

These only parse arguments: the process itself (signals, web server, simulators, shutdown) is
:func:`meterhub.runtime.run_gateway`; errors become exit codes in :mod:`meterhub.cli._app`.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from meterhub import __version__
from meterhub.checks import load_site
from meterhub.cli._app import app
from meterhub.config.faults import check_faults
from meterhub.config.loader import ConfigError
from meterhub.config.modbus_server import ModbusServerConfig, TcpEndpoint
from meterhub.config.publish import PublishInstance, demo_instance
from meterhub.config.schema import SiteConfig
from meterhub.errors import InputError
from meterhub.web.auth import setup_banner

if TYPE_CHECKING:
    from meterhub.runtime import Serving

console = Console(stderr=True)

REPO_EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
DEMO_SITE = REPO_EXAMPLES / "demo-site.yaml"


def _version(value: bool) -> None:
    if value:
        typer.echo(f"meterhub {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """meterhub — open multi-circuit power monitoring and control."""


def _load_or_exit(path: Path) -> SiteConfig:
    try:
        return load_site(path)
    except ConfigError as exc:
        console.print(f"[bold red]configuration error[/] ({len(exc.issues)} problem(s)):")
        for issue in exc.issues:
            console.print(f"  {issue}", style="red", markup=False, highlight=False, soft_wrap=True)
        console.print("nothing was started.")
        raise typer.Exit(code=2) from None


@app.command("check-config")
def check_config(file: Annotated[Path, typer.Argument(help="Site file (YAML).")]) -> None:
    """Validate a site file; print a summary, or every problem as FILE:LINE: FIELD: MESSAGE (exit 2)."""
    cfg = _load_or_exit(file)
    t = Table(title=escape(f"{cfg.site.name} — {file}"), show_header=True)
    t.add_column("section")
    t.add_column("count", justify="right")
    t.add_column("ids")
    for section in ("panels", "buses", "devices", "circuits"):
        items = getattr(cfg, section)
        ids = ", ".join(i.id for i in items)
        t.add_row(section, str(len(items)), escape(ids if len(ids) < 90 else ids[:87] + "…"))
    Console().print(t)
    Console().print(f"[green]OK[/] {escape(str(file))} is valid.")


# -- serving ---------------------------------------------------------------------------------------
def _banner(serving: Serving) -> None:
    gateway, url = serving.gateway, serving.url
    cfg = gateway.config
    t = Table.grid(padding=(0, 2))
    t.add_row("[bold]site[/]", escape(cfg.site.name))
    t.add_row("[bold]web UI[/]", f"[link={url}]{url}[/link]")
    t.add_row("[bold]API[/]", f"{url}api/v1/live   ·   {url}docs")
    t.add_row("[bold]data[/]", escape(str(gateway.data_dir.resolve())))
    t.add_row(
        "[bold]devices[/]", f"{len(cfg.devices)} on {len(cfg.buses)} buses, {len(cfg.circuits)} circuits"
    )
    for endpoint in serving.simulators:
        t.add_row("[bold]simulator[/]", endpoint)
    for endpoint in serving.modbus_server:
        t.add_row("[bold]Modbus server[/]", f"{endpoint}   (SunSpec from 40000; docs/modbus-server.md)")
    if serving.modbus_gateway:
        t.add_row(
            "[bold]Modbus gateway[/]",
            f"{serving.modbus_gateway}   (to the RS485 lines; docs/modbus-server.md)",
        )
    console.print(t)
    text = setup_banner(gateway.data_dir)
    if text:
        console.print(text, style="bold yellow", markup=False)
    console.print("[green]running[/] — press Ctrl+C to stop")


def _run(
    cfg: SiteConfig,
    *,
    config_path: Path | None,
    data: Path,
    host: str,
    port: int,
    demo: bool,
    faults: Sequence[str] = (),
) -> None:
    # Lazy: the runtime (every driver, the simulators) and the web app double the CLI's start-up time
    # (0.9 s → 2 s of imports); only run and demo need them.
    from meterhub.runtime import run_gateway
    from meterhub.web.app import create_app

    code = run_gateway(
        cfg,
        data_dir=data,
        host=host,
        port=port,
        config_path=config_path,
        demo=demo,
        app_factory=create_app,
        on_ready=_banner,
        faults=faults,
    )
    if code == 0:
        console.print("[green]stopped[/]; registers and data are saved.")
    raise typer.Exit(code=code)


@app.command()
def run(
    config: Annotated[Path, typer.Option("--config", "-c", help="Site file (YAML).")],
    data: Annotated[Path, typer.Option("--data", help="Data folder (database, logs, state).")] = Path("data"),
    port: Annotated[
        int | None, typer.Option(help="Web/API port (default: the site file's web.port).")
    ] = None,
    host: Annotated[
        str | None, typer.Option(help="Listen address (default: the site file's web.host).")
    ] = None,
) -> None:
    """Run the gateway for a site: acquisition, storage, web UI and API."""
    cfg = _load_or_exit(config)
    _run(cfg, config_path=config, data=data, host=host or cfg.web.host, port=port or cfg.web.port, demo=False)


@app.command()
def demo(
    port: Annotated[int, typer.Option(help="Web/API port.")] = 8080,
    data: Annotated[Path, typer.Option("--data", help="Data folder.")] = Path("data/demo"),
    config: Annotated[
        Path, typer.Option("--config", help="Site file with a 'simulation' section.")
    ] = DEMO_SITE,
    host: Annotated[str, typer.Option(help="Listen address.")] = "127.0.0.1",
    mqtt: Annotated[
        str | None,
        typer.Option(
            "--mqtt",
            help="Also publish every format (eniscope-rtdata, meterhub-json, homeassistant) to this broker, "
            "e.g. mqtt://127.0.0.1:1883 (off by default).",
        ),
    ] = None,
    site_id: Annotated[
        str, typer.Option("--site-id", help="Site id in the published topics (meterhub/SITE_ID/…).")
    ] = "demo",
    modbus_server: Annotated[
        int | None,
        typer.Option(
            "--modbus-server",
            min=0,
            max=65535,
            help="Also serve every circuit as a SunSpec meter (and the flat map at unit 247) on this Modbus "
            "TCP port of --host (0: a free port; the address is printed at start).",
        ),
    ] = None,
    fault: Annotated[
        list[str] | None,
        typer.Option(
            "--fault",
            help="Simulate a wiring fault (repeatable): CIRCUIT:reverse:PHASE, CIRCUIT:swap:PHASE,PHASE, "
            "CIRCUIT:ratio:FACTOR, DEVICE:drop:PHASE (docs/commissioning.md).",
        ),
    ] = None,
) -> None:
    """Run a simulated site (devices served over their real protocols on loopback) with the gateway and web UI.

    The demo works on a copy of the site file in its data folder (``DATA/site.yaml``, made from
    ``--config`` on the first run), so what is changed in the web UI persists like on a real gateway;
    delete that copy to start again from ``--config``."""
    site = demo_site_file(config, data)
    cfg = _load_or_exit(site)
    if mqtt is not None:
        cfg = cfg.model_copy(update={"publish": [*(cfg.publish or []), _demo_publisher(mqtt, site_id)]})
    if modbus_server is not None:
        cfg = cfg.model_copy(update={"modbus_server": _demo_modbus_server(cfg, host, modbus_server)})
    faults = list(fault or [])
    try:
        check_faults(cfg, faults)
    except ValueError as exc:
        raise InputError(f"--fault: {exc}") from None
    _run(cfg, config_path=site, data=data, host=host, port=port, demo=True, faults=faults)


def _demo_modbus_server(cfg: SiteConfig, host: str, port: int) -> ModbusServerConfig:
    """The site's ``modbus_server:`` (or a default one) listening on ``host:port`` over Modbus TCP."""
    tcp = TcpEndpoint(host=host, port=port)
    if cfg.modbus_server is None:
        return ModbusServerConfig(tcp=tcp)
    return cfg.modbus_server.model_copy(update={"tcp": tcp, "enabled": True})


def _demo_publisher(url: str, site_id: str) -> PublishInstance:
    try:
        return demo_instance(url, site_id)
    except ValidationError as exc:
        reasons = "; ".join(
            str(e["msg"]).removeprefix("Value error, ") for e in exc.errors(include_url=False)
        )
        raise InputError(f"--mqtt {url} / --site-id {site_id}: {reasons}") from None


def demo_site_file(config: Path, data: Path) -> Path:
    """The demo's working copy of ``config``: ``data/site.yaml``, copied from ``config`` when absent."""
    site = data / "site.yaml"
    if site.exists():
        if config.resolve() != site.resolve():
            console.print(
                f"using the demo's site file {site} (edits made in the web UI); "
                f"delete it to start again from {config}",
                markup=False,
            )
        return site
    try:
        data.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(config, site)
    except OSError as exc:
        console.print(f"cannot copy {config} to {site}: {exc}", style="red", markup=False)
        raise typer.Exit(code=2) from None
    return site
