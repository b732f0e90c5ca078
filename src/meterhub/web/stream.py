"""The WebSocket hub: ``/api/v1/stream`` pushes new readings to browsers as they arrive.

One bus subscription (``"web"``, drop-oldest: the UI only needs the latest values) feeds every
connected client. Each client has its own small queue, so one slow browser never delays the others;
when a client falls behind, its oldest pending batches are dropped and it catches up with the next.

Messages (JSON text frames):

* ``{"type": "snapshot", "readings": [...]}`` once after connecting — the live cache,
* ``{"type": "readings", "readings": [...]}`` for each new batch (batches queued while a client was
  busy are merged into one message),

where each reading has the shape of ``GET /api/v1/live``. ``?circuit=ID`` (repeatable) limits the stream
to those circuits.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from urllib.parse import urlsplit

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from meterhub.bus import Overflow, ReadingBus, Subscription
from meterhub.model.readings import Quality, Reading
from meterhub.web.auth import live_allowed
from meterhub.web.deps import Live, reading_json

__all__ = ["StreamHub", "router"]

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1", tags=["live"])


class _Client:
    def __init__(self, circuits: set[str] | None, maxsize: int) -> None:
        self.circuits = circuits
        self.queue: asyncio.Queue[list[Reading]] = asyncio.Queue(maxsize=maxsize)
        self.dropped = 0

    def offer(self, batch: list[Reading]) -> None:
        if self.circuits is not None:
            batch = [r for r in batch if r.circuit in self.circuits]
            if not batch:
                return
        if self.queue.full():
            self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait(batch)

    async def next_message(self) -> list[Reading]:
        out = list(await self.queue.get())
        while not self.queue.empty():
            out.extend(self.queue.get_nowait())
        return out


class StreamHub:
    """Fan-out from the bus to WebSocket clients (started and stopped with the app)."""

    def __init__(self, *, client_queue: int = 64) -> None:
        self.client_queue = client_queue
        self.clients: set[_Client] = set()
        self._bus: ReadingBus | None = None
        self._sub: Subscription | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self, bus: ReadingBus) -> None:
        """Subscribe to ``bus`` and start fanning its batches out to the connected clients."""
        self._bus = bus
        self._sub = bus.subscribe("web", maxsize=256, overflow=Overflow.DROP_OLDEST)
        self._task = asyncio.create_task(self._pump(self._sub), name="web:stream")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._sub is not None and self._bus is not None:
            self._bus.unsubscribe(self._sub)
        self._task, self._sub = None, None

    async def _pump(self, sub: Subscription) -> None:
        while True:
            # invalid readings are for storage only (docs/ARCHITECTURE.md, "Invalid readings")
            batch = [r for r in await sub.get() if r.quality is not Quality.INVALID]
            if not batch:
                continue
            for client in list(self.clients):
                client.offer(batch)

    def connect(self, circuits: set[str] | None) -> _Client:
        c = _Client(circuits, self.client_queue)
        self.clients.add(c)
        return c

    def disconnect(self, client: _Client) -> None:
        self.clients.discard(client)


def _dump(kind: str, readings: list[Reading]) -> str:
    return json.dumps({"type": kind, "readings": [reading_json(r) for r in readings]}, separators=(",", ":"))


@router.websocket("/stream")
async def stream(websocket: WebSocket, live: Live) -> None:
    """Push live readings (see the module docstring for the message format)."""
    origin = websocket.headers.get("origin")
    if origin and urlsplit(origin).netloc != websocket.headers.get("host"):
        # a page of another site must not read the stream with the user's cookie (CSWSH)
        await websocket.close(code=4403, reason="cross-origin WebSocket refused")
        return
    if live_allowed(websocket) is None:
        await websocket.close(code=4401, reason="sign in or send an API token")
        return
    hub: StreamHub = websocket.app.state.hub
    wanted = set(websocket.query_params.getlist("circuit")) or None
    await websocket.accept()
    client = hub.connect(wanted)
    try:
        snapshot = [r for r in live.readings() if wanted is None or r.circuit in wanted]
        await websocket.send_text(_dump("snapshot", snapshot))
        receiver = asyncio.create_task(_drain_incoming(websocket))
        try:
            while True:
                getter = asyncio.create_task(client.next_message())
                done, _ = await asyncio.wait({getter, receiver}, return_when=asyncio.FIRST_COMPLETED)
                if receiver in done:
                    getter.cancel()
                    break
                await websocket.send_text(_dump("readings", getter.result()))
        finally:
            receiver.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await receiver
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        hub.disconnect(client)


async def _drain_incoming(websocket: WebSocket) -> None:
    """Read (and ignore) what the client sends until it disconnects."""
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while True:
            msg = await websocket.receive()
            if msg["type"] == "websocket.disconnect":
                return
