"""The latest value of every series, for the live API, the WebSocket stream and alarms — a bus sink.

:class:`LiveCache` is a :class:`~meterhub.bus.Sink` with its own ``DROP_OLDEST`` subscription: only the
latest values matter, so when it falls behind the oldest batches go (counted in its health), never
acquisition's time. A read applies whatever is still queued first, so a reader never sees a value older
than one already published — the same answer as when the cache was written directly, whether or not
the runtime's pump has run yet in this turn of the event loop.

Readings of quality :attr:`~meterhub.model.readings.Quality.INVALID` (refused by the energy stage:
not a number, out of range, a quarantined register reading) are skipped, as the Sink contract asks of
every sink but storage: the cache keeps the last usable value of the series, with its time, and the
device status says why nothing newer came.

Harmonic spectra (:class:`~meterhub.model.readings.Spectrum`, 51 values each) take a direct typed path
instead (:meth:`LiveCache.update_spectra`, the sources' ``publish_spectra``): they are never stored or
published on the bus, and only the latest per (circuit, quantity, phase) is kept.
"""

from __future__ import annotations

from collections.abc import Iterable

from meterhub.bus import Batch, Overflow, ReadingBus, Subscription
from meterhub.model.health import Health, HealthState
from meterhub.model.readings import Quality, Reading, SeriesKey, Spectrum
from meterhub.model.topology import Phase

__all__ = ["LIVE_QUEUE", "LiveCache", "live_cache"]

#: Batches the live cache may hold before dropping the oldest: at least a minute of every device
#: of a large site polled each second (100 devices × 60 s), far more than one event-loop stall.
LIVE_QUEUE = 6000


class LiveCache:
    """Latest reading per series and latest spectrum per spectrum series. Read by the web layer.

    ``subscription`` : where the cache takes its batches from (see :func:`live_cache`); None for a
    cache that is only written with :meth:`update` (tests, tools).
    """

    name = "live"

    def __init__(self, subscription: Subscription | None = None) -> None:
        self._sub = subscription
        self._latest: dict[SeriesKey, Reading] = {}
        self._spectra: dict[SeriesKey, Spectrum] = {}
        self._updated = 0.0

    # -- the Sink contract (meterhub.bus.Sink) ------------------------------------------------
    @property
    def subscription(self) -> Subscription:
        if self._sub is None:
            raise RuntimeError("this live cache is not subscribed to a bus (create it with live_cache())")
        return self._sub

    async def start(self) -> None:
        """Nothing to open: the cache is in memory."""

    async def deliver(self, batch: Batch) -> None:
        self.update(batch)

    async def stop(self) -> None:
        """Apply what is still queued, so the last values stay readable after shutdown."""
        self._catch_up()

    def health(self) -> Health:
        counters = {"series": len(self._latest), "spectra": len(self._spectra)}
        if self._sub is None:
            return Health(HealthState.OK, f"{len(self._latest)} series", counters)
        st = self._sub.stats
        counters |= {"delivered": st.delivered, "dropped": st.dropped, "pending": self._sub.pending}
        if self._sub.pending >= self._sub.maxsize:
            return Health(HealthState.DEGRADED, "falling behind: dropping the oldest batches", counters)
        return Health(HealthState.OK, f"{len(self._latest)} series", counters)

    # -- readings -------------------------------------------------------------------------------
    def _catch_up(self) -> None:
        if self._sub is None:
            return
        while (batch := self._sub.get_nowait()) is not None:
            self.update(batch)

    def update(self, batch: Iterable[Reading]) -> None:
        """Keep each usable reading of ``batch`` as the latest of its series (INVALID ones are skipped)."""
        invalid = Quality.INVALID
        for r in batch:
            if r.quality is invalid:
                continue
            self._latest[r.key] = r
            if r.ts > self._updated:
                self._updated = r.ts

    @property
    def updated(self) -> float:
        """Time of the newest reading seen [s since the epoch, UTC]; 0.0 before the first."""
        self._catch_up()
        return self._updated

    def readings(self, circuit: str | None = None) -> list[Reading]:
        """The latest reading of every series, of every circuit or of one."""
        self._catch_up()
        values = self._latest.values()
        if circuit is None:
            return list(values)
        return [r for r in values if r.circuit == circuit]

    def get(self, key: SeriesKey) -> Reading | None:
        """The latest reading of one series, or None."""
        self._catch_up()
        return self._latest.get(key)

    def __len__(self) -> int:
        self._catch_up()
        return len(self._latest)

    # -- spectra ------------------------------------------------------------------------------
    def update_spectra(self, batch: Iterable[Spectrum]) -> None:
        """Keep the newest spectrum of each (circuit, quantity, phase); an older one never replaces it."""
        for s in batch:
            key = s.key
            old = self._spectra.get(key)
            if old is None or s.ts >= old.ts:
                self._spectra[key] = s

    def spectrum(self, circuit: str, quantity: str, phase: Phase) -> Spectrum | None:
        """The latest spectrum of ``quantity`` (a catalogue id of kind spectrum) of one phase, or None.

        The result has ``ts`` [s], ``orders`` (0…50) and ``values`` (in the quantity's unit).
        """
        return self._spectra.get(SeriesKey(circuit, quantity, phase))

    def spectra(self, circuit: str | None = None) -> list[Spectrum]:
        """The latest spectra, of every circuit or of one."""
        values = self._spectra.values()
        if circuit is None:
            return list(values)
        return [s for s in values if s.circuit == circuit]

    def has_spectra(self, circuit: str) -> bool:
        return any(k.circuit == circuit for k in self._spectra)

    def clear_spectra(self) -> None:
        """Forget every spectrum (the configuration changed: a circuit may have moved to another device)."""
        self._spectra.clear()


def live_cache(bus: ReadingBus, *, maxsize: int = LIVE_QUEUE) -> LiveCache:
    """A live cache subscribed to ``bus`` (drop-oldest: only the latest values matter)."""
    return LiveCache(bus.subscribe("live", maxsize=maxsize, overflow=Overflow.DROP_OLDEST))
