"""What a publish instance sends: its selection of the site, and the readings of each interval aggregated.

:class:`Selection` decides which circuits and quantities an instance publishes (from its ``selection:``);
:class:`IntervalAggregator` collects the valid readings of each interval (``[k·T, (k+1)·T)`` in Unix time,
T = the instance's interval) and, once an interval is over, hands one :class:`CircuitInterval` per
circuit: the mean of each instantaneous series over the interval, the last value of each register
(cumulative) and interval quantity (demand, cost). INVALID readings never count (DESIGN.md: only valid
readings leave the gateway); the quality of an aggregate is the worst of the readings it holds.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from meterhub.config.publish import PublishInstance
from meterhub.config.schema import SiteConfig
from meterhub.model.quantities import CATALOGUE, Kind
from meterhub.model.readings import Quality, Reading
from meterhub.model.topology import Phase

__all__ = ["CircuitInfo", "CircuitInterval", "IntervalAggregator", "Selection", "Value"]


@dataclass(frozen=True, slots=True)
class CircuitInfo:
    """What the formats say about a circuit: id, name, zone, wiring (``3P4W`` …; ``virtual``), position."""

    id: str
    name: str
    zone: str | None
    wiring: str
    did: int  # 1-based position in the site file (Eniscope's device id)


@dataclass(frozen=True, slots=True)
class Value:
    """One aggregated series of one interval: value in the catalogue unit, worst quality, readings used."""

    value: float
    quality: Quality
    samples: int


@dataclass(frozen=True, slots=True)
class CircuitInterval:
    """One circuit's values of one interval. ``end`` [s since the epoch, UTC], ``interval`` [s]."""

    circuit: CircuitInfo
    end: float
    interval: float
    values: dict[tuple[str, Phase | None], Value]


class Selection:
    """The circuits and quantities an instance publishes (empty lists in the site file mean all)."""

    def __init__(self, config: SiteConfig, instance: PublishInstance) -> None:
        sel = instance.selection
        circuits: list[CircuitInfo] = []
        for i, c in enumerate(config.circuits):
            circuits.append(CircuitInfo(c.id, c.name or c.id, c.zone, c.wiring.value, i + 1))
        if config.energy is not None:
            for j, v in enumerate(config.energy.virtual):
                circuits.append(
                    CircuitInfo(v.id, v.name or v.id, v.zone, "virtual", len(config.circuits) + j + 1)
                )
        if sel.circuits or sel.zones:
            wanted = set(sel.circuits)
            zones = set(sel.zones)
            circuits = [c for c in circuits if c.id in wanted or (c.zone is not None and c.zone in zones)]
        self.circuits: dict[str, CircuitInfo] = {c.id: c for c in circuits}
        quantities = sel.quantities or [q for q, spec in CATALOGUE.items() if spec.kind is not Kind.SPECTRUM]
        self.quantities: frozenset[str] = frozenset(quantities)

    def wants(self, r: Reading) -> bool:
        return r.circuit in self.circuits and r.quantity in self.quantities


@dataclass(slots=True)
class _Acc:
    total: float = 0.0
    count: int = 0
    last: float = 0.0
    last_ts: float = float("-inf")
    quality: Quality = Quality.GOOD


@dataclass(slots=True)
class _Bucket:
    by_circuit: dict[str, dict[tuple[str, Phase | None], _Acc]] = field(default_factory=dict)


class IntervalAggregator:
    """Collect readings per interval; :meth:`close` returns the intervals that are over.

    interval : length of an interval [s]; intervals are aligned to Unix time (60 s → each minute).
    grace : how long after an interval's end readings are still taken for it [s].
    """

    def __init__(self, selection: Selection, interval: float, *, grace: float = 2.0) -> None:
        self.selection = selection
        self.interval = interval
        self.grace = grace
        self._buckets: dict[int, _Bucket] = {}
        self._closed_before = -1  # buckets with an index below this were handed out
        self.invalid = 0  # INVALID readings refused [count]
        self.late = 0  # readings for an interval already published [count]

    def add(self, batch: Iterable[Reading]) -> None:
        """Take the valid, selected readings of a batch."""
        sel = self.selection
        for r in batch:
            if not sel.wants(r):
                continue
            if r.quality >= Quality.INVALID:
                self.invalid += 1
                continue
            k = int(r.ts // self.interval)
            if k < self._closed_before:
                self.late += 1
                continue
            bucket = self._buckets.get(k)
            if bucket is None:
                bucket = self._buckets[k] = _Bucket()
            series = bucket.by_circuit.setdefault(r.circuit, {})
            acc = series.get((r.quantity, r.phase))
            if acc is None:
                acc = series[(r.quantity, r.phase)] = _Acc()
            acc.total += r.value
            acc.count += 1
            if r.ts >= acc.last_ts:
                acc.last, acc.last_ts = r.value, r.ts
            if r.quality > acc.quality:
                acc.quality = r.quality

    def close(self, now: float) -> list[CircuitInterval]:
        """The intervals that ended at least ``grace`` before ``now`` [s since the epoch], oldest first,
        one entry per circuit with readings."""
        out: list[CircuitInterval] = []
        for k in sorted(self._buckets):
            end = (k + 1) * self.interval
            if end + self.grace > now:
                break
            bucket = self._buckets.pop(k)
            self._closed_before = max(self._closed_before, k + 1)
            for circuit, series in bucket.by_circuit.items():
                values: dict[tuple[str, Phase | None], Value] = {}
                for (q, ph), acc in series.items():
                    kind = CATALOGUE[q].kind
                    v = acc.total / acc.count if kind is Kind.INSTANTANEOUS else acc.last
                    values[(q, ph)] = Value(v, acc.quality, acc.count)
                out.append(CircuitInterval(self.selection.circuits[circuit], end, self.interval, values))
        return out
