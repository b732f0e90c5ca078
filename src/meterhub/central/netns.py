"""Network namespaces for ``meterhub simulate-fleet --netns`` (Linux, root): gateways on their own
addresses, the broker on its own address, all inside the machine.

Layout of one run (``<tag>`` = ``mhsim<pid>``)::

    <tag>-b   the broker namespace: bridge "br0" 198.18.0.1/24, listener 198.18.0.1:1883
    <tag>-g0  gateway namespace 0: "eth0" 198.18.0.10/24, a veth whose peer is on br0
    <tag>-g1  gateway namespace 1: "eth0" 198.18.0.11/24 …

198.18.0.0/15 is the benchmarking range (RFC 2544 / RFC 6890): never routed on the Internet. The
machine's own namespace gets no interface on it and no namespace has a default route, so nothing the
simulation sends can leave its namespaces except through the listener.

The listener relays each connection to the broker given with ``--mqtt`` (a thread of this process opens
the upstream connection from the machine's namespace, e.g. to 127.0.0.1:1883): the gateways reach the
fleet's broker through its namespace address, and central keeps its usual connection.

:class:`NetnsFleet` creates everything, :meth:`NetnsFleet.close` deletes every namespace it made (their
veths and the bridge go with them); stale namespaces of a run killed with SIGKILL are removed at the
next run (their pid is gone).
"""

from __future__ import annotations

import ctypes
import logging
import os
import queue
import re
import shutil
import socket
import subprocess
import threading
from pathlib import Path

from meterhub.errors import InputError

__all__ = ["BROKER_ADDRESS", "NetnsError", "NetnsFleet", "enter", "list_namespaces", "usable"]

log = logging.getLogger("meterhub.central")

#: The broker namespace's address and listener port.
BROKER_ADDRESS = "198.18.0.1"
BROKER_PORT = 1883
#: Gateway namespace k has 198.18.0.(GATEWAY_BASE + k).
GATEWAY_BASE = 10
MAX_NAMESPACES = 200
_CLONE_NEWNET = 0x40000000  # <sched.h>
_NETNS_DIR = Path("/var/run/netns")
_TAG = re.compile(r"^mhsim(\d+)-(b|g\d+)$")


class NetnsError(InputError):
    """The namespaces cannot be made or used (not root, no ``ip``, a command failed)."""


def usable() -> str | None:
    """Why network namespaces cannot be used here (None: they can)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return (
            "network namespaces need root (CAP_SYS_ADMIN and CAP_NET_ADMIN): run as root, or without --netns"
        )
    if shutil.which("ip") is None:
        return "the 'ip' command (iproute2) is missing: install iproute2, or run without --netns"
    return None


def _ip(*args: str) -> None:
    res = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if res.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)}: {res.stderr.strip() or f'exit status {res.returncode}'}")


def list_namespaces() -> list[str]:
    """Names under /var/run/netns (where ``ip netns add`` puts them)."""
    try:
        return sorted(p.name for p in _NETNS_DIR.iterdir())
    except OSError:
        return []


def enter(name: str) -> None:
    """Move the calling thread into namespace ``name`` (setns(2); threads it starts later follow it)."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(_NETNS_DIR / name, os.O_RDONLY)
    try:
        if libc.setns(fd, _CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise NetnsError(f"cannot enter network namespace {name}: {os.strerror(err)}")
    finally:
        os.close(fd)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale() -> list[str]:
    """Delete the namespaces of earlier runs whose process is gone; their names."""
    gone = []
    for name in list_namespaces():
        m = _TAG.match(name)
        if m and not _pid_alive(int(m.group(1))):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)
            gone.append(name)
    return gone


class NetnsFleet:
    """The namespaces of one simulation: ``gateways`` gateway namespaces and a broker namespace whose
    listener relays to ``upstream`` (host, port) in the machine's namespace."""

    def __init__(self, gateways: int, upstream: tuple[str, int]) -> None:
        if not 1 <= gateways <= MAX_NAMESPACES:
            raise NetnsError(f"--netns: 1 to {MAX_NAMESPACES} gateway namespaces, not {gateways}")
        self.tag = f"mhsim{os.getpid()}"
        self.broker_ns = f"{self.tag}-b"
        self.gateway_ns = [f"{self.tag}-g{k}" for k in range(gateways)]
        self.upstream = upstream
        self.made: list[str] = []
        self.relayed = 0  # connections relayed
        self._stop = threading.Event()
        self._listener: socket.socket | None = None
        self._accepted: queue.Queue[socket.socket | None] = queue.Queue()
        self._threads: list[threading.Thread] = []

    @property
    def broker_url(self) -> str:
        return f"mqtt://{BROKER_ADDRESS}:{BROKER_PORT}"

    def gateway_address(self, k: int) -> str:
        return f"198.18.0.{GATEWAY_BASE + k}"

    # -- set up -----------------------------------------------------------------------------------
    def open(self) -> None:
        """Create the namespaces, links and addresses, and start the listener (everything made so far
        is deleted again when a step fails)."""
        problem = usable()
        if problem:
            raise NetnsError(f"--netns: {problem}")
        for name in remove_stale():
            log.warning("simulate-fleet: removed the namespace %s of an earlier run that was killed", name)
        try:
            self._make()
            self._start_listener()
        except BaseException:
            self.close()
            raise

    def _add(self, name: str) -> None:
        _ip("netns", "add", name)
        self.made.append(name)
        _ip("-n", name, "link", "set", "lo", "up")

    def _make(self) -> None:
        b = self.broker_ns
        self._add(b)
        _ip("-n", b, "link", "add", "br0", "type", "bridge")
        _ip("-n", b, "addr", "add", f"{BROKER_ADDRESS}/24", "dev", "br0")
        _ip("-n", b, "link", "set", "br0", "up")
        for k, g in enumerate(self.gateway_ns):
            self._add(g)
            # both ends are created in their namespaces: no name ever appears in the machine's namespace
            _ip("link", "add", "eth0", "netns", g, "type", "veth", "peer", "name", f"g{k}", "netns", b)
            _ip("-n", b, "link", "set", f"g{k}", "master", "br0")
            _ip("-n", b, "link", "set", f"g{k}", "up")
            _ip("-n", g, "addr", "add", f"{self.gateway_address(k)}/24", "dev", "eth0")
            _ip("-n", g, "link", "set", "eth0", "up")

    def _start_listener(self) -> None:
        ready: queue.Queue[BaseException | None] = queue.Queue()
        t = threading.Thread(target=self._listen, args=(ready,), name="netns-listener", daemon=True)
        t.start()
        err = ready.get(timeout=30)
        if err is not None:
            raise NetnsError(f"--netns: the broker namespace's listener: {err}")
        c = threading.Thread(target=self._connect_loop, name="netns-connector", daemon=True)
        c.start()
        self._threads += [t, c]

    def _listen(self, ready: queue.Queue[BaseException | None]) -> None:
        # This thread moves into the broker namespace: its listening socket lives there. Upstream
        # connections are opened by the connector thread, which stays in the machine's namespace.
        try:
            enter(self.broker_ns)
            srv = socket.create_server((BROKER_ADDRESS, BROKER_PORT), backlog=256)
        except (OSError, NetnsError) as exc:
            ready.put(exc)
            return
        srv.settimeout(0.5)
        self._listener = srv
        ready.put(None)
        while not self._stop.is_set():
            try:
                conn, _ = srv.accept()
            except TimeoutError:
                continue
            except OSError:
                break
            self._accepted.put(conn)
        srv.close()

    def _connect_loop(self) -> None:
        while True:
            conn = self._accepted.get()
            if conn is None:
                return
            try:
                up = socket.create_connection(self.upstream, timeout=10)
            except OSError as exc:
                log.warning("simulate-fleet --netns: cannot reach the broker %s:%s: %s", *self.upstream, exc)
                conn.close()
                continue
            up.settimeout(None)
            self.relayed += 1
            for a, b in ((conn, up), (up, conn)):
                threading.Thread(target=_pump, args=(a, b), name="netns-relay", daemon=True).start()

    # -- tear down --------------------------------------------------------------------------------
    def close(self) -> None:
        """Stop the listener and delete every namespace this run made (idempotent)."""
        self._stop.set()
        self._accepted.put(None)
        for t in self._threads:
            t.join(5)
        self._threads.clear()
        failed = []
        for name in reversed(self.made):
            res = subprocess.run(["ip", "netns", "del", name], capture_output=True, text=True, timeout=30)
            if res.returncode != 0 and name in list_namespaces():
                failed.append(f"{name}: {res.stderr.strip()}")
        self.made.clear()
        if failed:
            raise NetnsError("cannot delete the namespaces " + "; ".join(failed))


def _pump(src: socket.socket, dst: socket.socket) -> None:
    """Copy ``src`` to ``dst`` until either closes; then close both."""
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
