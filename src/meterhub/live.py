"""The latest value of every series, for the live API, the WebSocket stream and alarms."""

from __future__ import annotations

from collections.abc import Iterable

from meterhub.model.readings import Reading, SeriesKey

__all__ = ["LiveCache"]


class LiveCache:
    """Latest reading per series. Updated from the bus; read by the web layer."""

    def __init__(self) -> None:
        self._latest: dict[SeriesKey, Reading] = {}
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
