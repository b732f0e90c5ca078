"""``meterhub central``: one worker process — the MQTT → PostgreSQL worker and, with a port, the fleet
API — until SIGINT/SIGTERM. Run N of them (each with its own ``worker_id``, one with a port) to split
the load: the broker's shared subscription spreads the messages over them. Every process also runs a
fleet alarm evaluator (:mod:`meterhub.central.alarms`); one of them, chosen by a PostgreSQL advisory lock,
evaluates and notifies."""

from __future__ import annotations

import logging
import signal
import socket
import threading

import uvicorn

from meterhub.central.alarms import FleetAlarms, paho_publisher
from meterhub.central.api import create_central_app
from meterhub.central.config import CentralConfig
from meterhub.central.store import CentralStore
from meterhub.central.views import FleetViews
from meterhub.central.worker import CentralWorker
from meterhub.errors import ConfigurationError
from meterhub.logs import setup_logging
from meterhub.web.auth import AuthState

__all__ = ["run_central"]

log = logging.getLogger("meterhub.central")


def _check_port(host: str, port: int) -> None:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise ConfigurationError(
                f"central web API: cannot listen on {host}:{port}: {exc.strerror}"
            ) from None


def run_central(cfg: CentralConfig) -> int:
    """Run until a signal; the exit code (0 after a signal)."""
    cfg.data.mkdir(parents=True, exist_ok=True)
    setup_logging(cfg.data)
    if cfg.port:
        _check_port(cfg.host, cfg.port)
    worker = CentralWorker(cfg)
    worker.start()
    alarms = FleetAlarms(cfg, publish=paho_publisher(worker.client))
    alarms.start()
    try:
        if cfg.port:
            views = FleetViews(cfg, CentralStore(cfg.dsn))
            auth = AuthState.for_data_dir(cfg.data)
            if not len(auth.store):
                log.warning(
                    "central has no user yet: the fleet API and page answer 401 until one is added with "
                    "`meterhub user add NAME --role admin --data %s`",
                    cfg.data,
                )
            app = create_central_app(
                views, lambda: {**worker.stats.as_dict(), "alarms": alarms.health().as_dict()}, auth
            )
            log.info("central fleet API on http://%s:%d/", cfg.host, cfg.port)
            uvicorn.run(app, host=cfg.host, port=cfg.port, log_level="warning")
        else:
            stop = threading.Event()
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: stop.set())
            while not stop.wait(1):
                pass
    finally:
        alarms.stop()
        worker.stop()
    return 0
