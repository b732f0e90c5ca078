"""The hook between a Modbus IO module's raw values and the IO point semantics.

A DIO-4/2, AIO-2/2 or pulse concentrator is read like any Modbus device (its profile maps
``pulse_count``, ``digital_input``, ``relay_output``, ``analog_input`` and ``analog_output`` per
channel). What those raw values *mean* — weight and unit of a pulse input, NO/NC and function of a
digital input, the engineering range of an analog input — is site configuration (the ``io:`` section).
:class:`IODevice` applies it::

    devices = io_devices(config, data_dir)                     # once per source
    io = devices.get(device.id)                                 # None: not an IO module with points
    if io is not None:
        result = io.process_points(ts, read.values)             # never raises
        emit(result.readings)                                   # keyed by point id
    ...
    io.close()                                                  # on shutdown: persist pulse totals

Pulse totals and run hours are registers the gateway computes, so :class:`IODevice` implements
:class:`~meterhub.drivers.base.ComputesRegisters` (through the Modbus source that owns it): the runtime
stores them with every flush and seeds them at start from storage. The state file stays the primary
copy of a pulse point that counts with a device counter, because the total *with the counter value it
belongs to* is exact however old the file is (pulses counted while the gateway was down or since the
save are picked up from the counter) — so a total is saved at once when it gets its first counter
value, and then every ``save_interval``. The stored total is taken for a point the file lacks (then
counting starts at the first read) and for totals without a device counter (edges, run hours), where
the greater of the two is the later one.

Raw values expected (what the profiles in ``src/meterhub/profiles`` deliver):
``pulse_count`` the device's pulse counter [pulses]; ``digital_input`` the *contact* state, 1 = closed;
``relay_output`` the coil, 1 = energised; ``analog_input`` / ``analog_output`` the signal [mA or V].
Channels without a configured point are not emitted (the raw value alone has no meaning).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meterhub.config.schema import SiteConfig
from meterhub.drivers.io.analog import AnalogStatus, output_signal, quality_of, scale_input, to_engineering
from meterhub.drivers.io.config import (
    AnalogInPoint,
    AnalogOutPoint,
    DigitalFunction,
    DigitalPoint,
    IOPoint,
    PulsePoint,
    RelayPoint,
    TemperaturePoint,
    io_section,
)
from meterhub.drivers.io.digital import DigitalEvent, DigitalInput
from meterhub.drivers.io.errors import OutputWriteError
from meterhub.drivers.io.pulse import INDEX_QUANTITY, UNIT_FACTOR, PulseMeter
from meterhub.drivers.io.relay import OutputPort, OutputTarget, RelayOutput, write_confirmed
from meterhub.drivers.io.state import IOState, load_state, save_state, state_path
from meterhub.model.quantities import Q
from meterhub.model.readings import Reading, SeriesKey
from meterhub.model.topology import Phase

__all__ = ["IODevice", "IOResult", "RawKey", "io_devices", "output_target"]

log = logging.getLogger("meterhub.io")

#: (catalogue quantity of the raw register, 1-based channel)
RawKey = tuple[str, int | None]


@dataclass
class IOResult:
    """What one processed read gives: readings keyed by point id, and digital input events."""

    readings: list[Reading] = field(default_factory=list)
    events: list[DigitalEvent] = field(default_factory=list)


class IODevice:
    """The IO points of one module, with their state (pulse totals, digital input states).

    Parameters
    ----------
    device : device id.
    points : the device's points (temperature points are ignored: they are not on Modbus).
    state_file : JSON file for pulse totals (None: not persisted).
    save_interval : write the state at most this often while running [s].
    clock : time source for throttled saving [s].
    """

    def __init__(
        self,
        device: str,
        points: Sequence[IOPoint],
        *,
        state_file: Path | None = None,
        save_interval: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.device = device
        self.points = [p for p in points if not isinstance(p, TemperaturePoint)]
        self.state_file = state_file
        self.save_interval = save_interval
        self.clock = clock
        stored = load_state(state_file) if state_file is not None else IOState()
        self.pulses = {
            p.id: PulseMeter(p, stored.pulses[p.id]) if p.id in stored.pulses else PulseMeter(p)
            for p in self.points
            if isinstance(p, PulsePoint)
        }
        self.inputs = {
            p.id: DigitalInput(p, active_time=stored.hours.get(p.id, 0.0))
            for p in self.points
            if isinstance(p, DigitalPoint)
        }
        self._in_file = set(stored.pulses)  # pulse points whose state came from the state file
        self._problems: dict[str, str] = {}  # last problem logged per point
        self._flagged: set[str] = set()  # points with a problem in the current process() call
        self._dirty = False
        self._baseline = False  # a pulse total got its first device counter value: save it now
        self._saved_at = clock()

    # -- reading ------------------------------------------------------------------------------------
    def process(self, ts: float, raw: Mapping[RawKey, float]) -> IOResult:
        """Turn one read of the module (``raw`` by (quantity, channel)) taken at ``ts`` [s] into readings.

        Never raises: a point whose value is missing or unusable is skipped and logged once.
        """
        out = IOResult()
        self._flagged = set()
        for p in self.points:
            try:
                self._process_point(p, ts, raw, out)
            except (ValueError, TypeError, OverflowError) as exc:
                where = f"device {self.device} point {p.id} channel {getattr(p, 'channel', '-')}"
                self._problem(p.id, f"{where}: {exc}")
        for point in set(self._problems) - self._flagged:
            del self._problems[point]  # recovered: a new problem is logged again
        # A total is saved at once with its first counter value: from then on the file's total with
        # its counter is exact however old the file is (counted pulses are picked up from the counter)
        if self._baseline or (self._dirty and self.clock() - self._saved_at >= self.save_interval):
            self._baseline = False
            self.save()
        return out

    def process_points(self, ts: float, values: Mapping[Any, float]) -> IOResult:
        """:meth:`process` for a Modbus read result: ``values`` keyed by profile points (anything with
        ``quantity`` and ``channel``, e.g. :class:`meterhub.profiles.schema.Point`)."""
        return self.process(ts, {(p.quantity, p.channel): v for p, v in values.items()})

    def _problem(self, point: str, message: str) -> None:
        self._flagged.add(point)
        if self._problems.get(point) != message:
            log.warning("%s", message)
        self._problems[point] = message

    def _process_point(self, p: IOPoint, ts: float, raw: Mapping[RawKey, float], out: IOResult) -> None:
        if isinstance(p, PulsePoint):
            value = raw.get((Q.PULSE_COUNT, p.channel))
            if value is None:
                return
            if not float(value).is_integer() or value < 0:
                raise ValueError(f"pulse counter value {value!r} is not a non-negative integer")
            meter = self.pulses[p.id]
            if meter.state.last_raw is None:
                self._baseline = True  # the total's first counter value: saved at once (see process)
            res = meter.counter(ts, int(value))
            if res.reset:
                # not judged here: a glitch and its recovery cancel out, a restart is confirmed (or not)
                # by the energy registers, the one owner of register monotonicity
                log.warning(
                    "device %s point %s: pulse counter went down by %d to %d (not a roll-over); "
                    "passed on as the device shows it",
                    self.device,
                    p.id,
                    -res.delta,
                    int(value),
                )
            self._dirty = self._dirty or res.delta != 0
            out.readings.extend(meter.readings(ts))
        elif isinstance(p, DigitalPoint):
            value = raw.get((Q.DIGITAL_INPUT, p.channel))
            if value is None:
                return
            di = self.inputs[p.id]
            before = di.active_time
            event = di.update(ts, bool(value))
            if event is not None:
                out.events.append(event)
                log.info("device %s input %d: %s", self.device, p.channel, event)
            reading = di.reading(ts)
            if reading is not None:
                out.readings.append(reading)
                if p.function is DigitalFunction.RUN:
                    out.readings.append(di.hours_reading(ts))
            self._dirty = self._dirty or di.active_time != before
        elif isinstance(p, RelayPoint):
            value = raw.get((Q.RELAY_OUTPUT, p.channel))
            if value is None:
                return
            energised = bool(value) != p.inverted
            out.readings.append(Reading(ts, p.id, Q.RELAY_OUTPUT, Phase.TOTAL, float(energised)))
        elif isinstance(p, AnalogInPoint):
            value = raw.get((Q.ANALOG_INPUT, p.channel))
            if value is None:
                return
            out.readings.append(self._analog(p, ts, value, Q.ANALOG_INPUT))
        elif isinstance(p, AnalogOutPoint):
            value = raw.get((Q.ANALOG_OUTPUT, p.channel))
            if value is None:
                return
            out.readings.append(self._analog(p, ts, value, Q.ANALOG_OUTPUT))

    def _analog(self, p: AnalogInPoint | AnalogOutPoint, ts: float, signal: float, quantity: str) -> Reading:
        clamp = p.clamp if isinstance(p, AnalogInPoint) else True
        value, status = scale_input(signal, p.signal, p.range[0], p.range[1], clamp=clamp)
        st = AnalogStatus(int(status))
        if st >= AnalogStatus.OUT_OF_RANGE:
            # keep the unclipped value for diagnosis; INVALID values are never aggregated
            value = to_engineering(signal, p.signal, p.range[0], p.range[1])
            self._problem(
                p.id,
                f"device {self.device} point {p.id} channel {p.channel}: {signal:g} on a "
                f"{p.signal.value} input is {st.name.lower().replace('_', ' ')}"
                + (" (open loop or sensor failure, NAMUR NE 43)" if st is AnalogStatus.FAIL_LOW else ""),
            )
        v = float(value)
        if not math.isfinite(v):
            raise ValueError(f"analog signal {signal!r} is not a number")
        return Reading(ts, p.id, quantity, Phase.TOTAL, v, quality_of(st))

    # -- writing ------------------------------------------------------------------------------------
    def point(self, point_id: str) -> IOPoint:
        for p in self.points:
            if p.id == point_id:
                return p
        raise KeyError(f"device {self.device} has no IO point {point_id!r}")

    def relay(self, point_id: str, port: OutputPort, target: OutputTarget, **kw: Any) -> RelayOutput:
        """A :class:`RelayOutput` for relay point ``point_id`` writing through ``port`` at ``target``."""
        p = self.point(point_id)
        if not isinstance(p, RelayPoint):
            raise TypeError(f"point {point_id!r} is a {p.kind} point, not a relay")
        return RelayOutput(p, port, target, **kw)

    async def set_analog_output(
        self, point_id: str, value: float, port: OutputPort, target: OutputTarget, factor: float
    ) -> Reading:
        """Drive analog output ``point_id`` to the engineering ``value`` and confirm it by read-back.

        ``factor`` is the register's raw → signal factor from the profile (e.g. 0.001 for µA → mA).
        Returns the confirmed ``analog_output`` reading.
        """
        p = self.point(point_id)
        if not isinstance(p, AnalogOutPoint):
            raise TypeError(f"point {point_id!r} is a {p.kind} point, not an analog output")
        signal = float(output_signal(value, p.signal, p.range[0], p.range[1]))
        raw = round(signal / factor)
        if not 0 <= raw <= 0xFFFF:
            raise OutputWriteError(f"{target}: {signal:g} gives register value {raw}, outside 0…65535")
        held = await write_confirmed(port, target, [raw])
        return self._analog(p, self.clock(), held[0] * factor, Q.ANALOG_OUTPUT)

    # -- registers the gateway computes (ComputesRegisters) ---------------------------------------
    def _run_inputs(self) -> list[DigitalInput]:
        return [di for di in self.inputs.values() if di.point.function is DigitalFunction.RUN]

    def computed_series(self) -> list[SeriesKey]:
        """Pulse count and index of every pulse point; run hours of every run-feedback input."""
        keys: list[SeriesKey] = []
        for m in self.pulses.values():
            p = m.point
            keys += [
                SeriesKey(p.id, Q.PULSE_COUNT, Phase.TOTAL),
                SeriesKey(p.id, INDEX_QUANTITY[p.medium], Phase.TOTAL),
            ]
        keys += [SeriesKey(di.point.id, Q.OPERATING_HOURS, Phase.TOTAL) for di in self._run_inputs()]
        return keys

    def computed_registers(self) -> dict[SeriesKey, float]:
        """The totals now: pulses [pulses], index [Wh or m³], run hours [h]."""
        out: dict[SeriesKey, float] = {}
        for m in self.pulses.values():
            p = m.point
            out[SeriesKey(p.id, Q.PULSE_COUNT, Phase.TOTAL)] = float(m.state.pulses)
            out[SeriesKey(p.id, INDEX_QUANTITY[p.medium], Phase.TOTAL)] = m.index
        for di in self._run_inputs():
            out[SeriesKey(di.point.id, Q.OPERATING_HOURS, Phase.TOTAL)] = di.active_time / 3600.0
        return out

    def seed_registers(self, registers: Mapping[SeriesKey, float]) -> None:
        """Continue from stored totals (see the module docstring for which copy wins)."""
        for m in self.pulses.values():
            p = m.point
            if p.id in self._in_file and m.state.last_raw is not None:
                continue  # the file's total with its device counter is exact
            pulses = self._stored_pulses(m, registers)
            if pulses is None or pulses <= m.state.pulses:
                continue
            log.warning(
                "device %s point %s: pulse total continues from the stored %d pulses (state file %s: %s)",
                self.device,
                p.id,
                pulses,
                self.state_file,
                f"{m.state.pulses} pulses" if p.id in self._in_file else "no state for the point",
            )
            m.state.pulses = pulses
            self._dirty = True
        for di in self._run_inputs():
            hours = registers.get(SeriesKey(di.point.id, Q.OPERATING_HOURS, Phase.TOTAL))
            if hours is not None and math.isfinite(hours) and hours * 3600.0 > di.active_time:
                log.info(
                    "device %s point %s: run hours continue from the stored %.4f h (state file: %.4f h)",
                    self.device,
                    di.point.id,
                    hours,
                    di.active_time / 3600.0,
                )
                di.active_time = hours * 3600.0
                self._dirty = True

    @staticmethod
    def _stored_pulses(m: PulseMeter, registers: Mapping[SeriesKey, float]) -> int | None:
        """The pulse total storage holds for ``m``: its pulse count, else from its index."""
        p = m.point
        count = registers.get(SeriesKey(p.id, Q.PULSE_COUNT, Phase.TOTAL))
        if count is not None and math.isfinite(count):
            return round(count)
        index = registers.get(SeriesKey(p.id, INDEX_QUANTITY[p.medium], Phase.TOTAL))
        if index is not None and math.isfinite(index) and p.weight > 0:
            return math.floor((index / UNIT_FACTOR[p.unit] - p.initial) / p.weight + 1e-6)
        return None

    # -- state ------------------------------------------------------------------------------------
    def save(self) -> None:
        """Persist pulse totals and run hours now (called on a timer by :meth:`process` and by :meth:`close`)."""
        self._saved_at = self.clock()
        if self.state_file is None or not (self.pulses or self.inputs):
            return
        state = IOState(
            {k: m.state for k, m in self.pulses.items()},
            {k: di.active_time for k, di in self.inputs.items()},
        )
        try:
            save_state(self.state_file, state)
            self._dirty = False
        except OSError as exc:
            log.error("cannot save IO state of device %s to %s: %s", self.device, self.state_file, exc)

    def close(self) -> None:
        self.save()


def io_devices(
    config: SiteConfig, data_dir: str | Path | None = None, *, devices: Collection[str] | None = None
) -> dict[str, IODevice]:
    """An :class:`IODevice` for every device that has Modbus IO points in the site's ``io`` section.

    ``devices`` limits it to those device ids (one bus's source): only one :class:`IODevice` may own a
    device's state file, or a second one would overwrite the totals with stale ones on close.
    """
    section = io_section(config)
    out: dict[str, IODevice] = {}
    for device in config.devices:
        if devices is not None and device.id not in devices:
            continue
        points = [p for p in section.on_device(device.id) if not isinstance(p, TemperaturePoint)]
        if points:
            path = state_path(data_dir, device.id) if data_dir is not None else None
            out[device.id] = IODevice(device.id, points, state_file=path)
    return out


def output_target(profile: Any, device: str, unit: int, quantity: str, channel: int) -> OutputTarget:
    """The writable entry of a profile for ``quantity`` on ``channel`` as an :class:`OutputTarget`.

    ``profile`` is a :class:`meterhub.profiles.schema.Profile` (its ``writable`` list).
    Raises ``KeyError`` naming the profile when it has no such writable point.
    """
    for w in getattr(profile, "writable", ()):
        if w.quantity == quantity and w.channel == channel:
            return OutputTarget(device, w.function, unit, w.address)
    raise KeyError(f"profile {getattr(profile, 'id', '?')} has no writable {quantity} on channel {channel}")
