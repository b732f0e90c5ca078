"""The latest value of every series, for the live API, the WebSocket stream and alarms.

Scalar readings arrive in batches from the bus side of :meth:`meterhub.runtime.Gateway.emit`. Harmonic
spectra (:class:`~meterhub.model.readings.Spectrum`, 51 values each) are kept here only — the latest per
(circuit, quantity, phase) — and never stored: see :meth:`LiveCache.update_spectra`.
"""

from __future__ import annotations

from collections.abc import Iterable

from meterhub.model.readings import Reading, SeriesKey, Spectrum
from meterhub.model.topology import Phase

__all__ = ["LiveCache"]


class LiveCache:
    """Latest reading per series and latest spectrum per spectrum series. Read by the web layer."""

    def __init__(self) -> None:
        self._latest: dict[SeriesKey, Reading] = {}
        self._spectra: dict[SeriesKey, Spectrum] = {}
        self.updated = 0.0  # ts of the newest reading seen [s]

    def update(self, batch: Iterable[Reading]) -> None:
        for r in batch:
            self._latest[r.key] = r
            if r.ts > self.updated:
                self.updated = r.ts

    def readings(self, circuit: str | None = None) -> list[Reading]:
        values = self._latest.values()
        if circuit is None:
            return list(values)
        return [r for r in values if r.circuit == circuit]

    def get(self, key: SeriesKey) -> Reading | None:
        return self._latest.get(key)

    def __len__(self) -> int:
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
