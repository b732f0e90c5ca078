"""The demo's simulated site: protocol-true simulators of every configured bus, on loopback.

Importing this module imports the simulator modules, which registers them by
:class:`~meterhub.config.BusKind` (``meterhub.sim.base.register_simulator``).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Sequence
from pathlib import Path

import meterhub.sim.adc
import meterhub.sim.dlms
import meterhub.sim.iec62056
import meterhub.sim.io
import meterhub.sim.modbus_server  # noqa: F401 - importing the simulator modules registers them by bus kind
from meterhub.config.schema import SiteConfig
from meterhub.sim.base import SimContext, SimServer, simulator_factory
from meterhub.sim.physics import SiteModel

__all__ = ["demo_site", "save_periodically", "start_simulators"]

log = logging.getLogger("meterhub.runtime")


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


def demo_site(cfg: SiteConfig) -> SiteConfig:
    """The demo's variant of a site: simulator buses whose port is taken (another demo, a test) move
    to free loopback ports, and the live display is public (a lobby screen; configuration and users
    never are)."""
    buses = []
    for bus in cfg.buses:
        if bus.port is not None and not _port_free(bus.host, bus.port):
            new = _free_port(bus.host)
            log.info("bus %s: port %d is taken, simulating on %d instead", bus.id, bus.port, new)
            bus = bus.model_copy(update={"port": new})
        buses.append(bus)
    web = cfg.web.model_copy(update={"public_live": True})
    return cfg.model_copy(update={"buses": buses, "web": web})


async def start_simulators(
    cfg: SiteConfig, data_dir: Path, faults: Sequence[str] = ()
) -> tuple[list[SimServer], SiteModel]:
    """Serve every bus of ``cfg`` with its protocol simulator, from one physical model of the site
    (wired with ``simulation.faults`` and ``faults``, :mod:`meterhub.config.faults`)."""
    model = SiteModel(cfg, state_file=data_dir / "sim-state.json", faults=faults)
    if model.faults:
        log.warning("simulated wiring faults: %s", ", ".join(str(f) for f in model.faults))
    servers: list[SimServer] = []
    try:
        for bus in cfg.buses:
            factory = simulator_factory(bus.kind)
            if factory is None:
                log.error("no simulator for bus %r (%s)", bus.id, bus.kind.value)
                continue
            devices = [d for d in cfg.devices if d.bus == bus.id]
            servers.append(await factory(SimContext(cfg, bus, devices, model, data_dir)))
    except BaseException:
        for s in servers:
            await s.close()
        raise
    return servers, model


async def save_periodically(model: SiteModel, interval: float) -> None:
    """Save the simulated site's state (its meters' registers and their time) every ``interval`` [s].

    After a ``kill -9`` the model continues from the last save and integrates the time since, so the
    simulated meters never go back (see :mod:`meterhub.sim.physics`); saving often keeps that catch-up
    short and exact (the span after a save is recomputed cell by cell)."""
    while True:
        await asyncio.sleep(interval)
        model.save()
