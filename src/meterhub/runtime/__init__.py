"""Wiring and supervision: the composition root of meterhub.

* :class:`Gateway` (:mod:`.gateway`) — sources → energy stage → bus → sinks in one asyncio process;
* :mod:`.sinks` — the sink registry keyed by :class:`~meterhub.bus.SinkKind`, and the storage sink;
* :func:`supervise` (:mod:`.supervise`) — restart with backoff, so one task never takes the gateway down;
* :func:`run_gateway` / :func:`serve` (:mod:`.serve`) — the process: signals, web server, demo simulators
  (:mod:`.demo`, loaded for the demo only).

Importing this package imports the driver packages, which registers their sources by bus kind; importing
:mod:`.demo` registers the simulators.
"""

from meterhub.runtime.gateway import Gateway
from meterhub.runtime.serve import AppFactory, Serving, run_gateway, serve
from meterhub.runtime.sinks import CORE_SINKS, SINK_FACTORIES, StorageSink
from meterhub.runtime.supervise import TaskRecord, cancel_and_wait, supervise

__all__ = [
    "CORE_SINKS",
    "SINK_FACTORIES",
    "AppFactory",
    "Gateway",
    "Serving",
    "StorageSink",
    "TaskRecord",
    "cancel_and_wait",
    "run_gateway",
    "serve",
    "supervise",
]
