"""Core commands: ``demo``, ``run``, ``check-config`` and ``--version``."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import signal
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
import uvicorn
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from meterhub import __version__
from meterhub.checks import load_site
from meterhub.cli._app import app
from meterhub.config.loader import ConfigError
from meterhub.config.schema import SiteConfig
from meterhub.logs import setup_logging
from meterhub.runtime import SIMULATOR_MODULES, Gateway, load_plugins
from meterhub.sim.base import SimContext, SimServer, simulator_factory
from meterhub.sim.physics import SiteModel

console = Console(stderr=True)
log = logging.getLogger("meterhub.cli")

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
class _EmbeddedServer(uvicorn.Server):
    """uvicorn inside our event loop: signals are handled by meterhub, not by uvicorn."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        reason = "is already in use" if exc.errno == errno.EADDRINUSE else f"cannot be bound ({exc.strerror})"
        console.print(f"[bold red]error:[/] port {host}:{port} {reason}; choose another with --port")
        raise typer.Exit(code=3) from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _demo_ports(cfg: SiteConfig) -> SiteConfig:
    """Move simulator buses whose port is taken (another demo, a test) to free loopback ports."""
    buses = []
    for bus in cfg.buses:
        if bus.port is not None and not _port_free(bus.host, bus.port):
            new = _free_port(bus.host)
            log.info("bus %s: port %d is taken, simulating on %d instead", bus.id, bus.port, new)
            bus = bus.model_copy(update={"port": new})
        buses.append(bus)
    return cfg.model_copy(update={"buses": buses})


async def _start_simulators(cfg: SiteConfig, data_dir: Path) -> tuple[list[SimServer], SiteModel]:
    missing = load_plugins(SIMULATOR_MODULES)
    if missing:
        log.info("simulator modules not available: %s", ", ".join(missing))
    model = SiteModel(cfg, state_file=data_dir / "sim-state.json")
    servers: list[SimServer] = []
    for bus in cfg.buses:
        factory = simulator_factory(bus.kind)
        if factory is None:
            log.error("no simulator for bus %r (%s)", bus.id, bus.kind.value)
            continue
        devices = [d for d in cfg.devices if d.bus == bus.id]
        servers.append(await factory(SimContext(cfg, bus, devices, model, data_dir)))
    return servers, model


def _banner(gateway: Gateway, url: str, sims: list[SimServer]) -> None:
    cfg = gateway.config
    t = Table.grid(padding=(0, 2))
    t.add_row("[bold]site[/]", cfg.site.name)
    t.add_row("[bold]web UI[/]", f"[link={url}]{url}[/link]")
    t.add_row("[bold]API[/]", f"{url}api/v1/live   ·   {url}docs")
    t.add_row("[bold]data[/]", str(gateway.data_dir.resolve()))
    t.add_row(
        "[bold]devices[/]", f"{len(cfg.devices)} on {len(cfg.buses)} buses, {len(cfg.circuits)} circuits"
    )
    for s in sims:
        t.add_row("[bold]simulator[/]", s.endpoint)
    console.print(t)
    try:
        from meterhub.web.auth import setup_banner
    except ImportError:
        return
    text = setup_banner(gateway.data_dir)
    if text:
        console.print(f"[bold yellow]{text}[/]")


async def _serve(
    cfg: SiteConfig, *, config_path: Path | None, data_dir: Path, host: str, port: int, demo: bool
) -> int:
    sock = _bind(host, port)
    sims: list[SimServer] = []
    model: SiteModel | None = None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if demo:
        sims, model = await _start_simulators(cfg, data_dir)
    gateway = Gateway(cfg, data_dir=data_dir, config_path=config_path, demo=demo)
    await gateway.start()
    tasks: list[asyncio.Task[None]] = []
    server: _EmbeddedServer | None = None
    web_task: asyncio.Task[None] | None = None
    try:
        from meterhub.web.app import create_app
    except ImportError:
        create_app = None  # type: ignore[assignment]
        log.error("the web package is not available; serving no API")
    if create_app is not None:
        uv = uvicorn.Config(
            create_app(gateway),
            log_config=None,
            access_log=False,
            lifespan="on",
            ws="websockets-sansio",
            proxy_headers=False,  # only meterhub.web.limits reads proxy headers, from web.trusted_proxies
        )
        server = _EmbeddedServer(uv)
        web_task = asyncio.create_task(server.serve(sockets=[sock]))
        tasks.append(web_task)
    if model is not None:
        tasks.append(asyncio.create_task(_save_periodically(model, cfg.storage.flush_interval)))
    url = f"http://{host}:{port}/"
    _banner(gateway, url, sims)
    console.print("[green]running[/] — press Ctrl+C to stop")
    waiter = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
    code = 0
    if waiter not in done:  # the web server ended by itself: report and shut down
        code = 1
        log.error("the web server stopped unexpectedly")
    console.print("stopping: flushing buffered data …")
    waiter.cancel()
    if server is not None:
        server.should_exit = True
    for t in tasks:
        if t is not web_task:
            t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await gateway.stop()
    for s in sims:
        await s.close()
    if model is not None:
        model.save()
    sock.close()
    console.print("[green]stopped[/]; registers and data are saved.")
    return code


async def _save_periodically(model: SiteModel, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        model.save()


def _run(cfg: SiteConfig, *, config_path: Path | None, data: Path, host: str, port: int, demo: bool) -> None:
    setup_logging(data)
    code = asyncio.run(_serve(cfg, config_path=config_path, data_dir=data, host=host, port=port, demo=demo))
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
) -> None:
    """Run a simulated site (devices served over their real protocols on loopback) with the gateway and web UI."""
    cfg = _load_or_exit(config)
    cfg = _demo_ports(cfg)
    # The demo's live display is public (a lobby screen); configuration and users never are.
    cfg = cfg.model_copy(update={"web": cfg.web.model_copy(update={"public_live": True})})
    _run(cfg, config_path=None, data=data, host=host, port=port, demo=True)
