"""A real gateway + web server on a free loopback port, in a background thread, for browser tests.

With ``simulate=True`` the site's buses are served by meterhub's protocol simulators (pymodbus on
loopback) and the gateway reads them through its Modbus driver — values change as in the demo.
"""

from __future__ import annotations

import asyncio
import re
import socket
import threading
from pathlib import Path

import uvicorn

import meterhub.runtime.demo  # noqa: F401 - registers the simulators
from meterhub.config.loader import parse_config
from meterhub.runtime import Gateway
from meterhub.sim.base import SimContext, SimServer, simulator_factory
from meterhub.sim.physics import SiteModel
from meterhub.storage import open_storage
from meterhub.web.app import create_app

from .conftest import SITE_YAML

SIM_LOADS = (
    "simulation:\n  loads:\n    grid: {model: supply, rated_power: 20000}\n"
    "    hvac: {model: hvac, rated_power: 6000, period: 20}\n    pv: {model: pv, rated_power: 3000}\n"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """``with LiveServer(tmp) as srv: srv.url`` — gateway, simulators and uvicorn in one event loop."""

    def __init__(
        self, tmp: Path, *, simulate: bool = True, public_live: bool = False, site_yaml: str | None = None
    ) -> None:
        """``site_yaml`` replaces the test site (with its own ``simulation`` section); every bus
        ``port: 159xx`` in it moves to a free loopback port."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        if site_yaml is None:
            site_yaml = SITE_YAML + (SIM_LOADS if simulate else "")
        text = re.sub(r"\bport: 159\d\d\b", lambda _: f"port: {free_port()}", site_yaml)
        self.config_path = tmp / "site.yaml"
        self.config_path.write_text(text, encoding="utf-8")
        cfg = parse_config(text, str(self.config_path))
        cfg.web.public_live = public_live
        self.data = tmp / "data"
        self.gateway = Gateway(
            cfg,
            data_dir=self.data,
            config_path=self.config_path,
            storage=open_storage(cfg.storage, self.data, timezone=cfg.site.timezone),
        )
        self.simulate = simulate
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="liveserver", daemon=True)
        self._server: uvicorn.Server | None = None
        self._sims: list[SimServer] = []

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported to the test thread
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        gw = self.gateway
        if self.simulate:
            model = SiteModel(gw.config)
            for bus in gw.config.buses:
                factory = simulator_factory(bus.kind)
                if factory is not None:
                    devices = [d for d in gw.config.devices if d.bus == bus.id]
                    self._sims.append(await factory(SimContext(gw.config, bus, devices, model, self.data)))
            await gw.start()
        config = uvicorn.Config(
            create_app(gw),
            host="127.0.0.1",
            port=self.port,
            log_config=None,
            access_log=False,
            ws="websockets-sansio",
            proxy_headers=False,  # as in production: only web.trusted_proxies decides (web/limits.py)
        )
        self._server = uvicorn.Server(config)
        serve = asyncio.create_task(self._server.serve())
        while not self._server.started and not serve.done():
            await asyncio.sleep(0.02)
        self._ready.set()
        await serve
        if self.simulate:
            await gw.stop()
            for s in self._sims:
                await s.close()
        else:
            gw.storage.close()

    def __enter__(self) -> LiveServer:
        self._thread.start()
        self._ready.wait(60)
        if self._error is not None:
            raise RuntimeError(f"the live server did not start: {self._error!r}") from self._error
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.should_exit = True
        self._thread.join(30)
