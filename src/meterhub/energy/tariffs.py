"""Time-of-use tariffs, prices and CO2 factors.

Up to 5 rates (seed 000/003: multi-tariff and dual-tariff meters; OBIS value group E = 1…5 in the order
the rates are listed). The rate in force is chosen

* by a **schedule**: seasons (from a local MM-DD until the next season's start), day types (weekday
  Mon–Fri, Saturday, Sunday/weekend, public holiday) and time bands (from a local HH:MM until the next
  band) — all in the site's time zone, so bands follow local clock time across DST changes; or
* by a **digital input** (seed 003 dual-tariff meter "trf" mode: the tariff switches when an external
  contact closes): the input's last state at or before each instant.

Tariffs are **effective-dated** (:class:`TariffTimeline`): ``energy.tariffs`` is the tariff in force from
its ``effective_from``, ``energy.tariff_history`` the earlier ones, each from its ``from`` until the next
one's start. Energy is priced with the tariff in force at the energy's time (a report slot's start, a live
demand subinterval's start), so a tariff change never re-prices past energy, and a cost over a period that
spans a change is split at the change. Energy older than the oldest start is priced with the oldest tariff.

All functions are vectorised over timestamps (numpy), no loop per sample.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np

from meterhub.energy.config import (
    Band,
    Co2Settings,
    EnergyConfig,
    Season,
    TariffPeriod,
    TariffSettings,
    co2_periods,
    tariff_periods,
)
from meterhub.energy.timeutil import local_date, local_midnight, zone

__all__ = ["Co2Factor", "SwitchInput", "TariffSchedule", "TariffTimeline", "load_co2_series", "split_by_rate"]

#: The (ts [s], state 0/1) series of a tariff-switch digital input.
SwitchInput = tuple[np.ndarray, np.ndarray]


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


class TariffTimeline:
    """The tariffs in force over time: one :class:`TariffSchedule` per period, each from its start until
    the next one's.

    Rates are numbered over all periods (:attr:`rate_ids`, oldest period's rates first, a rate id used
    again later keeps its number), so a maximum demand per rate keeps its rate across a tariff change.

    Parameters
    ----------
    periods : (start [s, UTC] or None for since ever, tariffs) oldest first, starts increasing
        (:func:`meterhub.config.energy.tariff_periods`).
    tz : IANA name of the site time zone.
    """

    def __init__(self, periods: Sequence[tuple[float | None, TariffSettings]], tz: str) -> None:
        if not periods:
            periods = [(None, TariffSettings())]
        self.tz = tz
        self.schedules = [TariffSchedule(settings, tz) for _, settings in periods]
        # the oldest period also covers the time before its start
        self.starts = np.array(
            [-np.inf] + [-np.inf if t is None else t for t, _ in periods[1:]], dtype=np.float64
        )
        self.rate_ids: list[str] = []
        for sched in self.schedules:
            self.rate_ids += [r for r in sched.rate_ids if r not in self.rate_ids]
        number = {rid: i for i, rid in enumerate(self.rate_ids)}
        # per period: its own rate index → the timeline's number, and the timeline's number → its prices
        self._global = [np.array([number[r] for r in s.rate_ids], dtype=np.int64) for s in self.schedules]
        n = max(len(self.rate_ids), 1)
        self._price = np.zeros((len(self.schedules), n))
        self._export = np.zeros((len(self.schedules), n))
        self._has = np.zeros((len(self.schedules), n), dtype=bool)
        for p, s in enumerate(self.schedules):
            self._price[p, self._global[p]] = s.prices
            self._export[p, self._global[p]] = s.export_prices
            self._has[p, self._global[p]] = True

    @classmethod
    def of(cls, energy: EnergyConfig, tz: str) -> TariffTimeline:
        """From the ``energy`` section: ``tariff_history`` and the current ``tariffs``."""
        return cls.from_history(energy.tariff_history, energy.tariffs, tz)

    @classmethod
    def from_history(cls, history: list[TariffPeriod], current: TariffSettings, tz: str) -> TariffTimeline:
        """From the history entries and the current tariff; :class:`~meterhub.config.energy.HistoryError`
        names the entry whose start is out of order."""
        return cls(tariff_periods(history, current, tz), tz)

    @classmethod
    def single(cls, schedule: TariffSchedule) -> TariffTimeline:
        """One tariff for all time."""
        return cls([(None, schedule.settings)], schedule.tz)

    @property
    def n_rates(self) -> int:
        return len(self.rate_ids)

    @property
    def current(self) -> TariffSchedule:
        """The newest tariff (the site file's ``energy.tariffs``)."""
        return self.schedules[-1]

    @property
    def switch_inputs(self) -> list[str]:
        """The digital inputs that switch the rate in some period."""
        return list(dict.fromkeys(s.settings.switch.input for s in self.schedules if s.settings.switch))

    def period_index(self, ts: np.ndarray) -> np.ndarray:
        """Index of the tariff period in force at each instant ``ts`` [s]."""
        ts = np.asarray(ts, dtype=np.float64)
        return np.searchsorted(self.starts, ts, side="right") - 1

    def rate_index(
        self, ts: np.ndarray, switch_input: SwitchInput | Mapping[str, SwitchInput] | None = None
    ) -> np.ndarray:
        """Number of the rate in force at each instant ``ts`` [s] (0 … n_rates − 1, see :attr:`rate_ids`).

        ``switch_input``: the series of the tariff input of a switched tariff, or a mapping input id →
        series when periods are switched by different inputs.
        """
        ts = np.asarray(ts, dtype=np.float64)
        out = np.zeros(ts.shape, dtype=np.int64)
        if ts.size == 0 or self.n_rates == 0:
            return out
        period = self.period_index(ts)
        for p in np.unique(period).tolist():
            sched = self.schedules[p]
            if sched.n_rates == 0:
                continue
            sw = switch_input
            if isinstance(switch_input, Mapping):
                sw = switch_input.get(sched.settings.switch.input) if sched.settings.switch else None
            at = period == p
            local = sched.rate_index(ts[at], sw if not isinstance(sw, Mapping) else None)
            out[at] = self._global[p][local]
        return out

    def energy_cost(
        self, ts: np.ndarray, rate: np.ndarray, e_import: np.ndarray, e_export: np.ndarray | None = None
    ) -> np.ndarray:
        """Cost of energies at instants ``ts`` [s] at rates ``rate`` (numbers of :meth:`rate_index`)
        [currency]: E_import [Wh] × price − E_export [Wh] × export price, prices per kWh of the tariff in
        force at each instant."""
        imp, exp = self.prices(ts, rate)
        cost = np.asarray(e_import, dtype=np.float64) * imp / 1000.0
        if e_export is not None:
            cost = cost - np.asarray(e_export, dtype=np.float64) * exp / 1000.0
        return np.asarray(cost, dtype=np.float64)

    def prices(self, ts: np.ndarray, rate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Import and export price at each instant ``ts`` [s] for rate numbers ``rate`` [currency/kWh].

        A rate the period at that instant does not have (a window that began under the previous tariff)
        is priced at the rate the period's own schedule chooses then."""
        ts = np.asarray(ts, dtype=np.float64)
        rate = np.asarray(rate, dtype=np.int64)
        if self.n_rates == 0:
            return np.zeros(ts.shape), np.zeros(ts.shape)
        period = self.period_index(ts)
        missing = ~self._has[period, rate]
        if missing.any():
            rate = rate.copy()
            rate[missing] = self.rate_index(ts[missing])
        return self._price[period, rate], self._export[period, rate]

    def standing_charge(self, edges: np.ndarray) -> np.ndarray:
        """Standing charge of each interval [currency]: each tariff's daily charge over the part of the
        interval in its period (see :meth:`TariffSchedule.standing_charge`)."""
        edges = np.asarray(edges, dtype=np.float64)
        out = np.zeros(max(len(edges) - 1, 0))
        if out.size == 0:
            return out
        for lo, hi, sched in self._spans(edges):
            out += sched.standing_charge(np.clip(edges, lo, hi))
        return out

    def demand_charge(self, edges: np.ndarray) -> np.ndarray:
        """Demand charge of each interval [currency/kW of its maximum demand]: the charges of the tariffs
        in force, weighted by the share of the interval each was in force (pro rata temporis)."""
        edges = np.asarray(edges, dtype=np.float64)
        length = np.diff(edges)
        out = np.zeros(length.shape)
        for lo, hi, sched in self._spans(edges):
            part = np.diff(np.clip(edges, lo, hi))
            out += sched.settings.demand_charge * np.divide(
                part, length, out=np.zeros_like(part), where=length > 0
            )
        return out

    def _spans(self, edges: np.ndarray) -> list[tuple[float, float, TariffSchedule]]:
        """(start, end [s], schedule) of each period, clipped to the edges' range."""
        first, last = float(edges[0]), float(edges[-1])
        ends = [*self.starts[1:].tolist(), np.inf]
        return [
            (max(float(a), first), min(float(b), last), s)
            for a, b, s in zip(self.starts.tolist(), ends, self.schedules, strict=True)
            if b > first and a < last
        ]


class Co2Factor:
    """CO2 factor of energy [kg/kWh]: a constant, or a step series (each value holds until the next).

    The constant may be effective-dated (``constants``: (start [s] or None, factor) periods, oldest first,
    from ``energy.co2.history``): each instant gets the constant in force then, so a new factor never
    changes the CO2 of energy used before it. Where the series has a value, the series applies.
    """

    def __init__(
        self,
        constant: float = 0.0,
        series: tuple[np.ndarray, np.ndarray] | None = None,
        *,
        constants: Sequence[tuple[float | None, float]] = (),
    ) -> None:
        self.constant = constant
        self.series = series
        periods = list(constants) or [(None, constant)]
        self._starts = np.array([-np.inf] + [-np.inf if t is None else t for t, _ in periods[1:]])
        self._factors = np.array([f for _, f in periods], dtype=np.float64)

    @classmethod
    def from_settings(
        cls, settings: Co2Settings, site_factor: float, bases: Sequence[Path | None] = (), tz: str = "UTC"
    ) -> Co2Factor:
        """From the ``energy.co2`` section, in the site time zone ``tz`` (dates in the history are local
        midnights). A relative file name is looked up in the working directory, then in each of ``bases``
        (the site file's folder, the data folder). Raises OSError/ValueError naming the file when it
        cannot be read, :class:`~meterhub.config.effective.HistoryError` naming the entry of a history
        out of order."""
        periods = co2_periods(settings, site_factor, tz)
        constant = periods[-1][1]
        if settings.file:
            path = Path(settings.file)
            if not path.is_absolute() and not path.exists():
                for base in bases:
                    if base is not None and (Path(base) / path).exists():
                        path = Path(base) / path
                        break
            return cls(constant, load_co2_series(path), constants=periods)
        return cls(constant, constants=periods)

    def constant_at(self, ts: np.ndarray) -> np.ndarray:
        """The constant factor in force at each instant [kg/kWh]."""
        ts = np.asarray(ts, dtype=np.float64)
        return np.asarray(
            self._factors[np.searchsorted(self._starts, ts, side="right") - 1], dtype=np.float64
        )

    def at(self, ts: np.ndarray) -> np.ndarray:
        """Factor at each instant [kg/kWh]."""
        ts = np.asarray(ts, dtype=np.float64)
        constant = self.constant_at(ts)
        if self.series is None or len(self.series[0]) == 0:
            return constant
        t, f = self.series
        i = np.searchsorted(t, ts, side="right") - 1
        return np.where(i >= 0, f[np.clip(i, 0, None)], constant)


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
