"""The gateway process: event loop, signals, the web server and the demo's simulators.

:func:`run_gateway` is what ``meterhub run`` and ``meterhub demo`` call after parsing their arguments:
it sets up logging, binds the web port, starts the demo's protocol simulators (``demo=True``), the
:class:`~meterhub.runtime.gateway.Gateway` and uvicorn in one asyncio loop, waits for SIGINT/SIGTERM and
shuts everything down gracefully (sources, sinks and their flush, simulators' state). The web app is
injected (``app_factory``), because the web layer sits above the runtime. The demo's part is
:mod:`meterhub.runtime.demo`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import signal
import socket
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import uvicorn

from meterhub.bus import SinkKind
from meterhub.config.schema import SiteConfig
from meterhub.errors import ConfigurationError
from meterhub.logs import setup_logging
from meterhub.publish.modbus_server import ModbusServerSink
from meterhub.runtime.gateway import STOP_TIMEOUT, Gateway
from meterhub.runtime.supervise import cancel_and_wait

if TYPE_CHECKING:
    from meterhub.sim.base import SimServer
    from meterhub.sim.physics import SiteModel

__all__ = ["AppFactory", "Serving", "bind_port", "run_gateway", "serve"]

log = logging.getLogger("meterhub.runtime")

#: Builds the ASGI app served for a gateway (``meterhub.web.app.create_app``).
AppFactory = Callable[[Gateway], Callable[..., Awaitable[None]]]


@dataclass(frozen=True)
class Serving:
    """What is running once the gateway serves (handed to ``on_ready``, e.g. for a console banner)."""

    gateway: Gateway
    url: str  # the web UI, e.g. http://127.0.0.1:8080/
    simulators: tuple[str, ...]  # endpoints of the demo's simulators, e.g. tcp://127.0.0.1:15020
    modbus_server: tuple[str, ...] = ()  # where the Modbus server (modbus_server:) listens, e.g. tcp://…:1502
    modbus_gateway: str = ""  # where the Modbus gateway (modbus_gateway:) listens


class _EmbeddedServer(uvicorn.Server):
    """uvicorn inside our event loop: signals are handled by meterhub, not by uvicorn."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def bind_port(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``; a port that cannot be bound is a configuration error."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        reason = "is already in use" if exc.errno == errno.EADDRINUSE else f"cannot be bound ({exc.strerror})"
        raise ConfigurationError(f"port {host}:{port} {reason}; choose another with --port") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


async def serve(
    config: SiteConfig,
    *,
    data_dir: Path,
    host: str,
    port: int,
    config_path: Path | None = None,
    demo: bool = False,
    app_factory: AppFactory | None = None,
    on_ready: Callable[[Serving], None] | None = None,
    faults: Sequence[str] = (),
) -> int:
    """Run the gateway (and, for ``demo``, its simulators) and the web app until SIGINT/SIGTERM.

    Returns the process exit code: 0 after a signal, 1 when the web server stopped by itself.
    Raises :class:`~meterhub.errors.MeterhubError` subclasses for what prevents starting (a port in
    use, storage that cannot be opened).
    """
    if demo:
        # Lazy: only the demo serves simulators; a production gateway never loads them (pymodbus's
        # server, the ADC board, the load models: 1.3 MB of resident memory, 0.1 s of imports).
        from meterhub.runtime.demo import demo_site, save_periodically, start_simulators

        config = demo_site(config)
    sock = bind_port(host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    sims: list[SimServer] = []
    model: SiteModel | None = None
    gateway: Gateway | None = None  # set once started, so that only a started gateway is stopped
    tasks: list[asyncio.Task[None]] = []
    server: _EmbeddedServer | None = None
    web_task: asyncio.Task[None] | None = None
    code = 0
    try:
        if demo:
            sims, model = await start_simulators(config, data_dir, faults)
            saver = save_periodically(model, config.storage.flush_interval)
            tasks.append(asyncio.create_task(saver, name="simulated site state"))
        gw = Gateway(config, data_dir=data_dir, config_path=config_path, demo=demo)
        if model is not None:
            gw.config_listeners.append(model.reconfigure)
        await gw.start()
        gateway = gw
        if app_factory is None:
            log.warning("no web app given; serving no API")
        else:
            uv = uvicorn.Config(
                app_factory(gw),
                log_config=None,
                access_log=False,
                lifespan="on",
                ws="websockets-sansio",
                proxy_headers=False,  # only meterhub.web.limits reads proxy headers, from web.trusted_proxies
            )
            server = _EmbeddedServer(uv)
            web_task = asyncio.create_task(server.serve(sockets=[sock]), name="web server")
            tasks.append(web_task)
        if on_ready is not None:
            modbus = gw.sinks.get(SinkKind.MODBUS_SERVER)
            endpoints = tuple(modbus.endpoints) if isinstance(modbus, ModbusServerSink) else ()
            mgw = gw.modbus_gateway.endpoint if gw.modbus_gateway is not None else ""
            on_ready(Serving(gw, f"http://{host}:{port}/", tuple(s.endpoint for s in sims), endpoints, mgw))
        waiter = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if waiter not in done:  # a task that should run until the signal ended by itself
            code = 1
            for t in done:
                reason = t.exception() if not t.cancelled() else None
                log.error("the %s stopped unexpectedly%s", t.get_name(), f": {reason}" if reason else "")
        log.info("stopping: flushing buffered data …")
    finally:
        await _shutdown(gateway, server, web_task, tasks, sims, model)
        sock.close()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return code


async def _shutdown(
    gateway: Gateway | None,
    server: _EmbeddedServer | None,
    web_task: asyncio.Task[None] | None,
    tasks: list[asyncio.Task[None]],
    sims: list[SimServer],
    model: SiteModel | None,
) -> None:
    """Stop in the reverse order of starting: web, gateway (flush), simulators, the model's state."""
    if server is not None:
        server.should_exit = True
    if web_task is not None:
        await asyncio.wait([web_task], timeout=STOP_TIMEOUT)  # uvicorn closes its connections itself
    await cancel_and_wait(tasks, timeout=STOP_TIMEOUT)
    try:
        if gateway is not None:
            await gateway.stop()
    finally:
        for s in sims:
            await s.close()
        if model is not None:
            model.save()


def run_gateway(
    config: SiteConfig,
    *,
    data_dir: Path,
    host: str,
    port: int,
    config_path: Path | None = None,
    demo: bool = False,
    app_factory: AppFactory | None = None,
    on_ready: Callable[[Serving], None] | None = None,
    log_level: int = logging.INFO,
    faults: Sequence[str] = (),
) -> int:
    """The whole process: logging to the console and ``DATA_DIR/meterhub.log``, then :func:`serve` in
    a new event loop. Returns the exit code."""
    setup_logging(data_dir, level=log_level)
    return asyncio.run(
        serve(
            config,
            data_dir=data_dir,
            host=host,
            port=port,
            config_path=config_path,
            demo=demo,
            app_factory=app_factory,
            on_ready=on_ready,
            faults=faults,
        )
    )
