"""The DLMS/COSEM :class:`~meterhub.drivers.base.Source`: one per ``kind: dlms`` bus (one meter).

The bus says how APDUs travel (:attr:`~meterhub.config.schema.Bus.dlms_framing`: the TCP wrapper,
HDLC on TCP or a serial port, or the optical port's mode E switch then HDLC), the client SAP and the
LLS password (``password_env`` / ``password_file``); the device's ``unit`` is the server's logical
address (1, the management logical device, when omitted) and its OBIS profile
(:mod:`meterhub.profiles.obis`) the registers to read.

Each poll reads every mapped register's value (attribute 2) in one GET-with-list; their scaler_unit
(attribute 3) is read once per association, so value × 10^scaler arrives with the unit the meter
states and the profile checks it against the catalogue (as for IEC 62056-21 readouts). The serial
number (Data 0.0.96.1.0.255) is read at each association and handed to ``SourceContext.device_serial``.
A register the meter does not have (object-undefined, read denied) is dropped from the polls with one
log line; a failed poll closes the association, and the next poll opens a new one. When the last good
poll is more than :data:`GAP_FILL_AFTER` ago (an outage of the link or of the meter), the gap is filled
with the meter's own load-profile entries (1.0.99.1.0.255, read by range): one batch per entry, at its
interval end, emitted before the poll's own batch, so registers and intervals across the gap are the
meter's exact values (counted as ``profile_entries_filled``); each filled range of each series is
handed to ``SourceContext.publish_filled`` (the storage's ``filled_ranges``, shown as ``filled`` by the
history API), the mark that these values are meter-sourced. A gateway restart is a gap too
(:class:`~meterhub.drivers.base.FillsGaps`). The meter's standard and alarm event logs
(:data:`DEVICE_LOGS`) go to ``SourceContext.publish_device_events`` whenever their entry count
changes. Readings become
circuit readings exactly as the IEC 62056-21 source's do.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Mapping
from datetime import UTC, datetime
from typing import Any

from meterhub.config.schema import Bus, Device
from meterhub.config.secrets import SecretError, read_secret
from meterhub.drivers.base import DeviceStatus, Emit, Source, SourceContext
from meterhub.drivers.dlms.client import (
    CLOCK,
    DATA,
    EXTENDED_REGISTER,
    PROFILE_GENERIC,
    REGISTER,
    CaptureObject,
    DlmsClient,
    decode_datetime,
    scale,
    unit_of,
)
from meterhub.drivers.dlms.errors import DlmsAccessError, DlmsError, DlmsTimeout
from meterhub.drivers.dlms.transport import WRAPPER_PORT, ApduTransport, HdlcTransport, WrapperTransport
from meterhub.drivers.iec62056.client import switch_to_mode_e
from meterhub.drivers.iec62056.errors import Iec62056Error
from meterhub.drivers.iec62056.link import Link, SerialLink, TcpLink
from meterhub.drivers.iec62056.source import readings_of, the_meter
from meterhub.model.device_log import DeviceEvent, FilledRange
from meterhub.model.pq import PqEvent, PqKind, PqSource
from meterhub.model.quantities import Q
from meterhub.model.readings import Reading, SeriesKey, iso_utc
from meterhub.model.topology import Phase
from meterhub.profiles.obis import ObisCode, ObisProfile, ObisValue

__all__ = ["DlmsSource", "dlms_sources", "full_name"]

log = logging.getLogger("meterhub.dlms")

SERIAL_NUMBER = "0.0.96.1.0.255"
#: The load profile (IEC 62056-6-1: 1.0.99.1.0.255) a gap is filled from.
LOAD_PROFILE = "1.0.99.1.0.255"
#: The billing profile (IEC 62056-6-1: 0.0.98.1.0.255): the meter's own billing snapshots.
BILLING = "0.0.98.1.0.255"
#: Log reads by range end this far after the gateway's clock [s]: the meter's clock may run ahead,
#: and an entry it stamped "in the future" must not be skipped (its count has changed already).
CLOCK_AHEAD = 86400.0
#: The power-quality event log (IEC 62056-6-1 group 99.98, E = 4).
PQ_LOG = "0.0.99.98.4.255"
#: Event codes of the power-quality log → (kind, begin or end, threshold [% of the declared voltage]).
#: Meters choose their own codes; these are the seed 002 emulator's (seed 002 names its logs but no
#: codes), so the log is read only for profiles listed in :data:`PQ_CODES_OF`.
_SEED002_PQ = {
    1: (PqKind.DIP, True, 90.0),
    2: (PqKind.DIP, False, 90.0),
    3: (PqKind.SWELL, True, 110.0),
    4: (PqKind.SWELL, False, 110.0),
}
PQ_CODES_OF: dict[str, dict[int, tuple[PqKind, bool, float]]] = {"seed002-1p-dlms": _SEED002_PQ}
#: The meter's own event logs (IEC 62056-6-1 group 99.98: E = 0 standard, E = 1 alarm … ) read into
#: the gateway's device event log (``GET /api/v1/events/device``): logical name → ``log`` name there.
DEVICE_LOGS: dict[str, str] = {"0.0.99.98.0.255": "standard", "0.0.99.98.1.255": "alarm"}
#: The texts of the event codes of each log, per OBIS profile. Meters choose their own codes (the
#: DLMS UA's Blue Book leaves them to the manufacturer; seed 002 names its logs but no codes), so these
#: are the seed 002 emulator's (:data:`meterhub.sim.dlms.EVENT_LOGS`) and the logs are read only for
#: profiles listed here; a code not listed is stored as ``event code N``.
EVENT_TEXTS_OF: dict[str, dict[str, dict[int, str]]] = {
    "seed002-1p-dlms": {
        "standard": {1: "power down", 2: "power up", 3: "clock adjusted", 4: "parameters changed"},
        "alarm": {1: "cover opened", 2: "magnetic field", 3: "clock battery low"},
    }
}
#: A gap longer than this since the last good poll is filled from the load profile [s].
GAP_FILL_AFTER = 900.0
#: Extended register (class 4) for maximum demand codes (D = 6, IEC 62056-61 Table 9), else Register.
_EXTENDED_REGISTER_D = 6


def full_name(code: ObisCode) -> str:
    """A profile code as a logical name: the reduced form of an electricity code is ``1-0:C.D.E*255``."""
    a = 1 if code.a is None else code.a
    b = 0 if code.b is None else code.b
    f = 255 if code.f is None else code.f
    return f"{a}.{b}.{code.c}.{code.d}.{code.e}.{f}"


class DlmsSource(Source):
    """Reads the registers of the meter on one dlms bus (``connect`` builds a fresh association)."""

    def __init__(
        self,
        ctx: SourceContext,
        *,
        connect: Callable[[], DlmsClient] | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        bus = ctx.bus
        self.name = f"dlms:{bus.id}"
        self.ctx, self.bus, self.wall = ctx, bus, wall
        self.device: Device | None = None
        self.profile: ObisProfile | None = None
        self.status: DeviceStatus | None = None
        self.client: DlmsClient | None = None
        self._scalers: dict[str, object] = {}
        self._last_ok: float | None = None  # time of the last good poll [s]
        self.backfill: list[list[Reading]] = []  # load-profile entries of a gap, emitted before the poll
        self.filled = 0  # load-profile entries emitted to fill gaps [count]
        self.clock_drift: float | None = None  # meter clock − gateway clock at the last association [s]
        self._billing_seen: int | None = None  # the billing profile's entries_in_use at the last read
        self._billing_off = ctx.meter_billing is None  # nobody keeps them, or the meter has none
        self.billed = 0  # the meter's billing snapshots handed to the billing history [count]
        self._maxima: dict[str, tuple[float, str]] = {}
        self._pq_seen: int | None = None  # the power-quality log's entries_in_use at the last read
        self._pq_from: float | None = (
            None  # read the log from here [s] (an unpaired begin, or after the last)
        )
        self.pq_events = 0  # power-quality events handed to the log [count]  # maximum demand → (capture time [s], value) emitted
        self._log_seen: dict[str, int] = {}  # event log → its entries_in_use at the last read
        self._log_from: dict[str, float] = {}  # event log → read it from here [s] (after the last entry)
        self._logs_off: set[str] = set()  # event logs this client may not read (asked no more)
        self.device_events = 0  # entries of the meter's event logs handed to the log [count]
        self._dropped: set[str] = set()
        self.refused = 0
        self.device, self.status, self.profile = the_meter(ctx, "one meter per dlms bus")
        if self.status is not None:
            self.status.extra_counters = self._counters
        self.circuits = [c for c in ctx.config.circuits if self.device and c.device == self.device.id]
        self._connect = connect or self._default_connect
        self.codes: dict[str, ObisCode] = {}
        if self.profile is not None:
            for code in self.profile.codes():
                self.codes.setdefault(full_name(code), code)

    # -- FillsGaps: a gateway restart is a gap the meter's load profile fills ---------------------
    def gap_series(self) -> list[SeriesKey]:
        """The import register of each circuit of the meter (of the device when no circuit uses it)."""
        if self.device is None or self.profile is None:
            return []
        owners = [c.id for c in self.circuits] or [self.device.id]
        return [SeriesKey(o, Q.ENERGY_ACTIVE_IMPORT, Phase.TOTAL) for o in owners]

    def seed_last_stored(self, last: Mapping[SeriesKey, float]) -> None:
        """Start from the earliest last stored time [s] of :meth:`gap_series`: the first poll then
        fills what the gateway missed while it was down (when longer than :data:`GAP_FILL_AFTER`)."""
        times = [t for k, t in last.items() if k in set(self.gap_series())]
        if times and self._last_ok is None:
            self._last_ok = min(times)

    def _counters(self) -> dict[str, int]:
        out = {
            "refused_values": self.refused,
            "profile_entries_filled": self.filled,
            "billing_snapshots_read": self.billed,
            "pq_events_read": self.pq_events,
            "device_events_read": self.device_events,
        }
        if self.clock_drift is not None:
            out["clock_offset_ms"] = round(self.clock_drift * 1000)  # meter − gateway, at association
        return out

    def _password(self) -> bytes | None:
        try:
            pw = read_secret(
                f"dlms bus {self.bus.id}", "password", self.bus.password_env, self.bus.password_file
            )
        except SecretError as exc:
            raise DlmsError(str(exc)) from None
        return None if pw is None else pw.encode("ascii", errors="replace")

    def _default_connect(self) -> DlmsClient:
        return DlmsClient(transport_for(self.bus, self.device), password=self._password())

    async def _associate(self) -> DlmsClient:
        client = self._connect()
        transport = client.transport
        if self.bus.dlms_framing == "mode-e" and isinstance(transport, HdlcTransport):
            try:
                await switch_to_mode_e(transport.link, max_baud=self.bus.baud, timeout=self.bus.timeout)
            except Iec62056Error as exc:
                await transport.link.close()
                raise DlmsError(f"mode E switch: {exc}") from None
        await client.associate()
        self._scalers.clear()
        names = [n for n in self.codes if n not in self._dropped]
        results = await client.get_with_list([(_class_of(self.codes[n]), n, 3) for n in names])
        refused: list[DlmsAccessError] = []
        for n, r in zip(names, results, strict=True):
            if isinstance(r, DlmsAccessError):
                self._drop(n, r)
                refused.append(r)
            else:
                self._scalers[n] = r
        if not self._scalers:
            await client.release()
            why = f" ({refused[0]})" if refused else ""
            self._dropped.clear()  # a new password or SAP may read them: ask again next time
            raise DlmsError(
                f"{client.transport.endpoint}: the meter gives client SAP {self.bus.client_sap or 0x10} none of the "
                f"{len(self.codes)} registers of profile {self.profile.id if self.profile else '?'}{why}"
            )
        try:
            serial = await client.get(1, SERIAL_NUMBER, 2)
        except DlmsAccessError:
            serial = None
        try:
            meter_time = await client.read_clock()
        except DlmsAccessError:
            meter_time = None
        if meter_time is not None:  # seed 002: ≤ 0.5 s/day; shown, the admin decides on a sync
            self.clock_drift = meter_time.timestamp() - self.wall()
        if isinstance(serial, bytes | str) and self.device is not None and self.ctx.device_serial is not None:
            text = serial.decode("ascii", errors="replace") if isinstance(serial, bytes) else serial
            self.ctx.device_serial(self.device.id, text.strip())
        return client

    def _drop(self, name: str, exc: DlmsAccessError) -> None:
        self._dropped.add(name)
        log.warning(
            "device %s: %s is not read any more: %s", self.device.id if self.device else "?", name, exc
        )

    async def poll_once(self) -> list[Reading]:
        """One poll: (re)associate when needed, read every register, map to readings."""
        if self.device is None or self.profile is None or self.status is None:
            return []
        self.status.requests += 1
        try:
            if self.client is None:
                self.client = await self._associate()
            names = [n for n in self._scalers if n not in self._dropped]
            refs = [(_class_of(self.codes[n]), n, 2) for n in names]
            maxima = [n for n in names if _class_of(self.codes[n]) == EXTENDED_REGISTER]
            refs += [(EXTENDED_REGISTER, n, 5) for n in maxima]  # capture_time (Blue Book §4.3.3)
            billing = not self._billing_off
            if billing:  # entries_in_use: a new billing snapshot shows as a new count
                refs.append((PROFILE_GENERIC, BILLING, 7))
            pq = self._pq_codes() is not None
            if pq:  # entries_in_use of the power-quality log: a new event shows as a new count
                refs.append((PROFILE_GENERIC, PQ_LOG, 7))
            logs = self._device_logs()  # their entries_in_use: a new entry shows as a new count
            refs += [(PROFILE_GENERIC, ln, 7) for ln in logs]
            results = await self.client.get_with_list(refs)
        except Exception:
            await self._close_client()
            raise
        counts = results[len(results) - len(logs) :]
        del results[len(results) - len(logs) :]
        for ln, n in zip(logs, counts, strict=True):
            await self._guard(f"event log {ln}", self._device_log(self.client, ln, n))
        if pq:
            await self._guard("power-quality log", self._pq_log(self.client, results.pop()))
        if billing:
            await self._guard("billing profile", self._billing(self.client, results.pop()))
        captured = dict(zip(maxima, results[len(names) :], strict=True))
        results = results[: len(names)]
        values: list[ObisValue] = []
        for n, r in zip(names, results, strict=True):
            if isinstance(r, DlmsAccessError):
                self._drop(n, r)
                continue
            su = self._scalers[n]
            if not isinstance(r, int | float) or isinstance(r, bool):
                self.refused += 1
                continue
            value = ObisValue(self.codes[n], repr(scale(r, su)), unit_of(su))
            if n in captured:
                self._captured(n, value, captured[n])
                continue
            values.append(value)
        mapped, problems = self.profile.decode(values)
        self.refused += len(problems)
        ts = self.wall()
        if self._last_ok is not None and ts - self._last_ok > GAP_FILL_AFTER:
            try:
                self.backfill += await self._fill_gap(self.client, self._last_ok, ts)
            except _MALFORMED as exc:  # the registers were read: the poll stands without the gap
                log.warning(
                    "device %s: the load profile of the gap could not be read: %s", self.device.id, exc
                )
        self._last_ok = ts
        self.status.ok(ts)
        if problems:
            self.status.last_error = f"value refused: {problems[0]}"
        return readings_of(ts, self.device, self.circuits, mapped)

    async def _guard(self, what: str, job: Coroutine[Any, Any, None]) -> None:
        """Run a log read; a failure or a malformed answer is logged naming the device and the log, and
        the poll stands (a meter's odd log must not stop its registers being read)."""
        try:
            await job
        except _MALFORMED as exc:
            log.warning(
                "device %s: the %s could not be read: %s", self.device.id if self.device else "?", what, exc
            )

    async def _billing(self, client: DlmsClient, entries: object) -> None:
        """Read the meter's billing snapshots that are new since the newest one kept (the first poll
        after a start or an outage, and whenever entries_in_use changes: after each billing date or
        billing command) and hand them to the billing history. A meter without a billing profile
        for this client is asked no more; a failed read is retried at the next poll."""
        sink, device = self.ctx.meter_billing, self.device
        if sink is None or device is None or self.profile is None:
            return
        if isinstance(entries, DlmsAccessError) or not isinstance(entries, int):
            self._billing_off = True
            log.info("device %s: no billing profile %s to read: %s", device.id, BILLING, entries)
            return
        if entries == self._billing_seen:
            return
        since = sink.last_meter_billing(device.id)
        try:
            columns = await client.capture_objects(BILLING)
            if since is None:
                rows = await client.read_profile(BILLING)
            else:
                rows = await client.read_profile(
                    BILLING,
                    datetime.fromtimestamp(since + 1.0, UTC),
                    datetime.fromtimestamp(self.wall() + CLOCK_AHEAD, UTC),
                )
        except DlmsError as exc:
            log.warning("device %s: the billing profile could not be read: %s", device.id, exc)
            return
        for row in rows:
            snapshot = self._snapshot(columns, row)
            if snapshot is not None and (since is None or snapshot[0] > since):
                self.billed += sink.meter_billing(device.id, *snapshot)
        self._billing_seen = entries

    def _device_logs(self) -> list[str]:
        """The meter's event logs to watch: those of :data:`DEVICE_LOGS` its profile has texts for, when
        somebody keeps them, and not refused to this client."""
        if self.ctx.publish_device_events is None or self.profile is None or self.device is None:
            return []
        texts = EVENT_TEXTS_OF.get(self.profile.id, {})
        return [ln for ln, name in DEVICE_LOGS.items() if name in texts and ln not in self._logs_off]

    async def _device_log(self, client: DlmsClient, ln: str, entries: object) -> None:
        """Read the meter's event log ``ln`` when its entries_in_use changed (the whole log after a
        start, then from after the last entry read) and hand its entries to the device event log, each
        with the meter's capture time and the code's text (:data:`EVENT_TEXTS_OF`). The log keeps an
        entry once (device, log, time, code), so reading the whole log again after a restart stores
        nothing twice. A log this client may not read is asked no more."""
        device, emit, profile = self.device, self.ctx.publish_device_events, self.profile
        if device is None or emit is None or profile is None:
            return
        name = DEVICE_LOGS[ln]
        if isinstance(entries, DlmsAccessError) or not isinstance(entries, int):
            self._logs_off.add(ln)
            log.info("device %s: no %s event log %s to read: %s", device.id, name, ln, entries)
            return
        if entries == self._log_seen.get(ln):
            return
        since = self._log_from.get(ln)
        try:
            columns = await client.capture_objects(ln)
            if since is None:
                rows = await client.read_profile(ln)
            else:
                rows = await client.read_profile(
                    ln,
                    datetime.fromtimestamp(since, UTC),
                    datetime.fromtimestamp(self.wall() + CLOCK_AHEAD, UTC),
                )
        except DlmsError as exc:
            log.warning("device %s: the %s event log %s could not be read: %s", device.id, name, ln, exc)
            return
        clock = next((i for i, c in enumerate(columns) if c.class_id == CLOCK), None)
        code_at = next((i for i, c in enumerate(columns) if c.class_id == DATA), None)
        if clock is None or code_at is None:
            log.warning("device %s: event log %s without clock or event code columns", device.id, ln)
            self._log_seen[ln] = entries
            return
        texts = EVENT_TEXTS_OF.get(profile.id, {}).get(name, {})
        out: list[DeviceEvent] = []
        last = since
        for row in rows:
            raw_t, code = row[clock], row[code_at]
            t = decode_datetime(raw_t) if isinstance(raw_t, bytes) and len(raw_t) == 12 else None
            if t is None or not isinstance(code, int) or isinstance(code, bool):
                self.refused += 1
                continue
            ts = t.timestamp()
            last = ts if last is None else max(last, ts)
            out.append(DeviceEvent(device.id, ts, name, code, texts.get(code, f"event code {code}")))
        if last is not None:
            self._log_from[ln] = last + 0.01
        self._log_seen[ln] = entries
        if out:
            self.device_events += len(out)
            emit(out)

    def _pq_codes(self) -> dict[int, tuple[PqKind, bool, float]] | None:
        if self.ctx.publish_pq_events is None or self.profile is None or self.device is None:
            return None
        return PQ_CODES_OF.get(self.profile.id)

    async def _pq_log(self, client: DlmsClient, entries: object) -> None:
        """Read the meter's power-quality log from where the last read ended (the whole log after a
        start: the log keeps each event once, see :mod:`meterhub.storage.events`) when its
        entries_in_use changed; each begin and its end become one :class:`PqEvent` (source device,
        flagged per IEC 61000-4-30 §4.7, extreme = the voltage the meter captured with the end). An
        event without a captured voltage is not logged (its extreme is unknown), and counted as refused."""
        codes, device, emit = self._pq_codes(), self.device, self.ctx.publish_pq_events
        if codes is None or device is None or emit is None:
            return
        if isinstance(entries, DlmsAccessError) or not isinstance(entries, int):
            self.ctx.publish_pq_events = None
            log.info("device %s: no power-quality log %s to read: %s", device.id, PQ_LOG, entries)
            return
        if entries == self._pq_seen:
            return
        now = self.wall()
        try:
            columns = await client.capture_objects(PQ_LOG)
            if self._pq_from is None:
                rows = await client.read_profile(PQ_LOG)
            else:
                rows = await client.read_profile(
                    PQ_LOG,
                    datetime.fromtimestamp(self._pq_from, UTC),
                    datetime.fromtimestamp(now + CLOCK_AHEAD, UTC),
                )
        except DlmsError as exc:
            log.warning("device %s: the power-quality log could not be read: %s", device.id, exc)
            return
        clock = next((i for i, c in enumerate(columns) if c.class_id == CLOCK), None)
        code_at = next((i for i, c in enumerate(columns) if c.class_id == DATA), None)
        volts = next(
            (i for i, c in enumerate(columns) if c.obis == "1.0.32.7.0.255" and c.attribute == 2), None
        )
        if clock is None or code_at is None:
            log.warning("device %s: power-quality log without clock or event code columns", device.id)
            self._pq_seen = entries
            return
        su = self._scalers.get("1.0.32.7.0.255")  # the voltage's scaler_unit, read at association
        circuit = self.circuits[0].id if self.circuits else None
        out: list[PqEvent] = []
        open_: dict[PqKind, float] = {}  # kind → begin time [s] of an event not ended yet
        last = self._pq_from
        for row in rows:
            raw_t = row[clock]
            t = decode_datetime(raw_t) if isinstance(raw_t, bytes) and len(raw_t) == 12 else None
            code = row[code_at]
            if t is None or not isinstance(code, int) or code not in codes:
                continue
            kind, begin, threshold = codes[code]
            ts = t.timestamp()
            last = ts if last is None else max(last, ts)
            if begin:
                open_[kind] = ts
                continue
            start = open_.pop(kind, None)
            v = row[volts] if volts is not None and su is not None else None
            if start is None:
                continue  # its begin was before what was read
            if not isinstance(v, int | float) or isinstance(v, bool):
                self.refused += 1
                continue
            out.append(
                PqEvent(
                    kind=kind,
                    start=start,
                    duration=round(ts - start, 3),
                    extreme=scale(v, su),
                    unit="V",
                    device=device.id,
                    source=PqSource.DEVICE,
                    phase="L1",
                    circuit=circuit,
                    flagged=True,
                    threshold=threshold,
                )
            )
        self._pq_from = min(open_.values()) if open_ else (None if last is None else last + 0.01)
        self._pq_seen = entries
        if out:
            self.pq_events += len(out)
            emit(out)

    def _snapshot(
        self, columns: list[CaptureObject], row: tuple[object, ...]
    ) -> tuple[float, dict[str, float], dict[str, dict[str, list[float | None]]]] | None:
        """One billing entry → (its time [s], registers, maximum demands with their times)."""
        if self.device is None or self.profile is None:  # pragma: no cover - guarded by the caller
            return None
        when: float | None = None
        times: dict[str, float] = {}  # maximum demand logical name → its capture time [s]
        for col, v in zip(columns, row, strict=False):
            t = decode_datetime(v) if isinstance(v, bytes) and len(v) == 12 else None
            if col.class_id == CLOCK and t is not None:
                when = t.timestamp()
            elif col.class_id == EXTENDED_REGISTER and col.attribute == 5 and t is not None:
                times[col.obis] = t.timestamp()
        if when is None:
            return None
        registers: dict[str, float] = {}
        max_demand: dict[str, dict[str, list[float | None]]] = {}
        for col, v in zip(columns, row, strict=False):
            su = self._scalers.get(col.obis)
            if col.attribute != 2 or su is None or not isinstance(v, int | float) or isinstance(v, bool):
                continue
            mapped, problems = self.profile.decode(
                [ObisValue(self.codes[col.obis], repr(scale(v, su)), unit_of(su))]
            )
            self.refused += len(problems)
            for r in readings_of(when, self.device, self.circuits, mapped):
                if col.class_id == EXTENDED_REGISTER:
                    max_demand[f"{r.circuit}/{r.quantity}"] = {"meter": [r.value, times.get(col.obis)]}
                else:
                    registers[str(r.key)] = r.value
        return when, registers, max_demand

    def _captured(self, name: str, value: ObisValue, raw_time: object) -> None:
        """A maximum demand (Extended register) with its capture time: one batch at the capture time,
        only when value or time changed since the last poll (the meter repeats it until a new maximum
        or a reset); without a usable capture time the value is not emitted (its time is unknown)."""
        t = decode_datetime(raw_time) if isinstance(raw_time, bytes) and len(raw_time) == 12 else None
        if t is None or self.device is None or self.profile is None:
            return
        key = (t.timestamp(), value.value)
        if self._maxima.get(name) == key:
            return
        self._maxima[name] = key
        mapped, problems = self.profile.decode([value])
        self.refused += len(problems)
        if mapped:
            self.backfill.append(readings_of(t.timestamp(), self.device, self.circuits, mapped))

    async def _fill_gap(self, client: DlmsClient, since: float, until: float) -> list[list[Reading]]:
        """The meter's own load-profile entries between the last good poll and now, one batch per
        entry in time order, each mapped like a poll (register columns of the profile's codes)."""
        if self.device is None or self.profile is None:  # pragma: no cover - guarded by poll_once
            return []
        try:
            columns = await client.capture_objects(LOAD_PROFILE)
            rows = await client.read_profile(
                LOAD_PROFILE, datetime.fromtimestamp(since, UTC), datetime.fromtimestamp(until, UTC)
            )
        except DlmsAccessError as exc:
            log.info("device %s: no load profile to fill gaps from: %s", self.device.id, exc)
            return []
        clock = next((i for i, c in enumerate(columns) if c.class_id == CLOCK), None)
        if clock is None:
            return []
        batches: list[list[Reading]] = []
        for row in rows:
            t = decode_datetime(row[clock]) if isinstance(row[clock], bytes) else None
            if t is None or not since < t.timestamp() < until:
                continue
            values = []
            for col, v in zip(columns, row, strict=False):
                su = self._scalers.get(col.obis)
                if col.attribute != 2 or su is None or not isinstance(v, int | float) or isinstance(v, bool):
                    continue
                values.append(ObisValue(self.codes[col.obis], repr(scale(v, su)), unit_of(su)))
            mapped, problems = self.profile.decode(values)
            self.refused += len(problems)
            if mapped:
                batches.append(readings_of(t.timestamp(), self.device, self.circuits, mapped))
        self.filled += len(batches)
        if batches and self.ctx.publish_filled is not None:
            spans: dict[str, tuple[float, float]] = {}  # series → (first, last filled time [s])
            for b in batches:
                for r in b:
                    lo, hi = spans.get(str(r.key), (r.ts, r.ts))
                    spans[str(r.key)] = (min(lo, r.ts), max(hi, r.ts))
            self.ctx.publish_filled(
                [FilledRange(k, lo, hi, self.device.id) for k, (lo, hi) in sorted(spans.items())]
            )
        if batches:
            log.warning(
                "device %s: %d load-profile entries %s … %s filled from the meter's memory (meter-sourced)",
                self.device.id,
                len(batches),
                iso_utc(batches[0][0].ts, "seconds"),
                iso_utc(batches[-1][0].ts, "seconds"),
            )
        return batches

    async def _close_client(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            await client.transport.disconnect()
            link = getattr(client.transport, "link", None)
            if isinstance(link, Link):
                await link.close()

    async def run(self, emit: Emit) -> None:
        if self.device is None or self.status is None:
            await asyncio.Event().wait()
            return
        interval = self.device.poll_interval
        loop = asyncio.get_running_loop()
        while True:
            start = loop.time()
            try:
                batch = await self.poll_once()
            except DlmsError as exc:
                self.status.failed(str(exc), timeout=isinstance(exc, DlmsTimeout))
                log.warning("device %s: %s", self.device.id, exc)
            else:
                # the meter's own intervals of a gap and its maximum demands, at their times, oldest first
                for past in sorted((b for b in self.backfill if b), key=lambda b: b[0].ts):
                    emit(past)
                self.backfill = []
                if batch:
                    emit(batch)
            await asyncio.sleep(max(0.0, start + interval - loop.time()))

    async def close(self) -> None:
        if self.client is not None:
            client, self.client = self.client, None
            await client.release()
            link = getattr(client.transport, "link", None)
            if isinstance(link, Link):
                await link.close()


#: What a malformed answer of a meter raises in the log readers (rows of another shape or type).
_MALFORMED = (DlmsError, TypeError, ValueError, IndexError, KeyError, AttributeError)


def _class_of(code: ObisCode) -> int:
    return EXTENDED_REGISTER if code.d == _EXTENDED_REGISTER_D else REGISTER


def transport_for(bus: Bus, device: Device | None) -> ApduTransport:
    """The transport a configured dlms bus describes."""
    logical = device.unit if device is not None and device.unit else 1
    sap = bus.client_sap or 0x10
    framing = bus.dlms_framing
    link: Link
    if bus.serial:
        link = SerialLink(bus.serial, binary=framing == "hdlc", baud=bus.baud if framing == "hdlc" else 300)
    else:
        link = TcpLink(bus.host, bus.port or WRAPPER_PORT)
    if framing == "wrapper":
        return WrapperTransport(link, client_sap=sap, server_sap=logical, timeout=bus.timeout)
    return HdlcTransport(link, client_sap=sap, server_logical=logical, timeout=bus.timeout)


def dlms_sources(ctx: SourceContext) -> list[Source]:
    """Source factory for ``kind: dlms`` buses."""
    return [DlmsSource(ctx)]
