"""Time-of-use tariffs, prices and CO2 factors.

Up to 5 rates (seed 000/003: multi-tariff and dual-tariff meters; OBIS value group E = 1…5 in the order
the rates are listed). The rate in force is chosen

* by a **schedule**: seasons (from a local MM-DD until the next season's start), day types (weekday
  Mon–Fri, Saturday, Sunday/weekend, public holiday) and time bands (from a local HH:MM until the next
  band) — all in the site's time zone, so bands follow local clock time across DST changes; or
* by a **digital input** (seed 003 dual-tariff meter "trf" mode: the tariff switches when an external
  contact closes): the input's last state at or before each instant.

All functions are vectorised over timestamps (numpy), no loop per sample.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np

from meterhub.energy.config import Band, Co2Settings, Season, TariffSettings
from meterhub.energy.timeutil import local_date, local_midnight, zone

__all__ = ["Co2Factor", "TariffSchedule", "load_co2_series", "split_by_rate"]


class TariffSchedule:
    """Which rate applies when, and what it costs.

    Parameters
    ----------
    settings : the ``energy.tariffs`` section.
    tz : IANA name of the site time zone.
    """

    def __init__(self, settings: TariffSettings, tz: str) -> None:
        self.settings = settings
        self.tz = tz
        self.rate_ids: list[str] = [r.id for r in settings.rates]
        self.prices = np.array([r.price for r in settings.rates], dtype=np.float64)
        self.export_prices = np.array([r.export_price for r in settings.rates], dtype=np.float64)
        self._index = {rid: i for i, rid in enumerate(self.rate_ids)}
        self._holidays = set(settings.holidays)  # "YYYY-MM-DD" or "MM-DD" (every year)
        self._seasons = sorted(settings.seasons, key=lambda s: s.start)

    @property
    def n_rates(self) -> int:
        return len(self.rate_ids)

    @property
    def switched(self) -> bool:
        """True when a digital input chooses the rate."""
        return self.settings.switch is not None

    # -- schedule -----------------------------------------------------------------------------
    def day_type(self, day: date) -> str:
        """``holiday`` | ``saturday`` | ``sunday`` | ``weekday`` of a local date."""
        if day.isoformat() in self._holidays or day.strftime("%m-%d") in self._holidays:
            return "holiday"
        return {5: "saturday", 6: "sunday"}.get(day.weekday(), "weekday")

    def season(self, day: date) -> Season:
        """The season in force on a local date (cyclic: before the first start, the last season)."""
        key = day.strftime("%m-%d")
        chosen = self._seasons[-1]
        for s in self._seasons:
            if s.start <= key:
                chosen = s
        return chosen

    def bands(self, day: date) -> list[Band]:
        """The bands of a local date, sorted by start."""
        s = self.season(day)
        kind = self.day_type(day)
        weekend = s.weekend or s.weekday
        if kind == "holiday":
            chosen = s.holiday or weekend
        elif kind == "saturday":
            chosen = s.saturday or weekend
        elif kind == "sunday":
            chosen = weekend
        else:
            chosen = s.weekday
        return sorted(chosen, key=lambda b: b.minute)

    def _breakpoints(self, first: date, last: date) -> tuple[np.ndarray, np.ndarray]:
        """UTC instants at which a rate starts, and the rate index from then on [s], [-]."""
        tz = zone(self.tz)
        times: list[float] = []
        rates: list[int] = []
        day = first - timedelta(days=1)  # the previous evening's last band runs into `first`
        while day <= last:
            for band in self.bands(day):
                h, m = divmod(band.minute, 60)
                times.append(datetime(day.year, day.month, day.day, h, m, tzinfo=tz).timestamp())
                rates.append(self._index[band.rate])
            day += timedelta(days=1)
        order = np.argsort(np.array(times), kind="stable")
        return np.array(times)[order], np.array(rates, dtype=np.int64)[order]

    def rate_index(
        self, ts: np.ndarray, switch_input: tuple[np.ndarray, np.ndarray] | None = None
    ) -> np.ndarray:
        """Index of the rate in force at each instant ``ts`` [s] (0 … n_rates − 1).

        ``switch_input`` is the (ts [s], state 0/1) series of the tariff input, needed when the
        tariff is switched by a digital input.
        """
        ts = np.asarray(ts, dtype=np.float64)
        if self.n_rates <= 1 or ts.size == 0:
            return np.zeros(ts.shape, dtype=np.int64)
        sw = self.settings.switch
        if sw is not None:
            closed, opened = self._index[sw.closed], self._index[sw.open]
            if switch_input is None or len(switch_input[0]) == 0:
                return np.full(ts.shape, opened, dtype=np.int64)
            t_in = np.asarray(switch_input[0], dtype=np.float64)
            state = np.asarray(switch_input[1], dtype=np.float64) >= 0.5
            i = np.searchsorted(t_in, ts, side="right") - 1
            on = np.where(i >= 0, state[np.clip(i, 0, None)], False)
            return np.where(on, closed, opened).astype(np.int64)
        first = local_date(float(ts.min()), self.tz)
        last = local_date(float(ts.max()), self.tz)
        bp, rates = self._breakpoints(first, last)
        i = np.searchsorted(bp, ts, side="right") - 1
        return rates[np.clip(i, 0, None)]

    # -- money --------------------------------------------------------------------------------
    def energy_cost(
        self, import_per_rate: np.ndarray, export_per_rate: np.ndarray | None = None
    ) -> np.ndarray:
        """Energy cost of intervals [currency] from energies per rate [Wh], shape (n_rates, N).

        cost = Σ_rates E_import × price − E_export × export_price, with prices per kWh.
        """
        imp = np.asarray(import_per_rate, dtype=np.float64)
        if self.n_rates == 0:
            return np.zeros(imp.shape[-1])
        cost = (self.prices[:, None] * imp).sum(axis=0) / 1000.0
        if export_per_rate is not None:
            cost -= (self.export_prices[:, None] * np.asarray(export_per_rate)).sum(axis=0) / 1000.0
        return np.asarray(cost, dtype=np.float64)

    def standing_charge(self, edges: np.ndarray) -> np.ndarray:
        """Standing charge of each interval [currency]: the daily charge shared by the part of each
        local day the interval covers (a 23-h day's hours cost 1/23 of the day each)."""
        edges = np.asarray(edges, dtype=np.float64)
        n = len(edges) - 1
        charge = self.settings.standing_charge
        if charge == 0 or n <= 0:
            return np.zeros(max(n, 0))
        first = local_date(float(edges[0]), self.tz)
        last = local_date(float(edges[-1]), self.tz) + timedelta(days=1)
        days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
        midnights = np.array([local_midnight(d, self.tz) for d in days])
        # cumulative charge as a piecewise-linear function of time: +charge per local day
        cum = np.arange(len(midnights), dtype=np.float64) * charge
        at = np.interp(edges, midnights, cum)
        return np.asarray(np.diff(at))


class Co2Factor:
    """CO2 factor of energy [kg/kWh]: a constant, or a step series (each value holds until the next)."""

    def __init__(self, constant: float = 0.0, series: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        self.constant = constant
        self.series = series

    @classmethod
    def from_settings(
        cls, settings: Co2Settings, site_factor: float, bases: Sequence[Path | None] = ()
    ) -> Co2Factor:
        """From the ``energy.co2`` section. A relative file name is looked up in the working directory,
        then in each of ``bases`` (the site file's folder, the data folder). Raises OSError/ValueError
        naming the file when it cannot be read."""
        constant = settings.factor if settings.factor is not None else site_factor
        if settings.file:
            path = Path(settings.file)
            if not path.is_absolute() and not path.exists():
                for base in bases:
                    if base is not None and (Path(base) / path).exists():
                        path = Path(base) / path
                        break
            return cls(constant, load_co2_series(path))
        return cls(constant)

    def at(self, ts: np.ndarray) -> np.ndarray:
        """Factor at each instant [kg/kWh]."""
        ts = np.asarray(ts, dtype=np.float64)
        if self.series is None or len(self.series[0]) == 0:
            return np.full(ts.shape, self.constant)
        t, f = self.series
        i = np.searchsorted(t, ts, side="right") - 1
        return np.where(i >= 0, f[np.clip(i, 0, None)], self.constant)


def load_co2_series(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read ``timestamp,factor`` rows (ISO 8601 with offset or Z; factor in kg/kWh), sorted by time."""
    times: list[float] = []
    factors: list[float] = []
    with path.open(newline="", encoding="utf-8") as fh:
        for lineno, row in enumerate(csv.reader(fh), start=1):
            if not row or row[0].strip().lower() in ("timestamp", "time", "") or row[0].startswith("#"):
                continue
            try:
                dt = datetime.fromisoformat(row[0].strip().replace("Z", "+00:00"))
                if dt.tzinfo is None:
                    raise ValueError("timestamp without a UTC offset")
                times.append(dt.timestamp())
                factors.append(float(row[1]))
            except (ValueError, IndexError) as exc:
                raise ValueError(f"{path}:{lineno}: bad CO2 row {row!r}: {exc}") from None
    order = np.argsort(times, kind="stable")
    return np.array(times)[order], np.array(factors)[order]


def split_by_rate(
    energy: np.ndarray, rate: np.ndarray, groups: np.ndarray, n_rates: int, n_groups: int
) -> np.ndarray:
    """Sum slot energies into (rate, group) cells [Wh] — slots are assigned to report intervals by
    ``groups`` and to rates by ``rate``; returns shape (max(n_rates, 1), n_groups)."""
    out = np.zeros((max(n_rates, 1), n_groups))
    np.add.at(out, (rate, groups), energy)
    return out
