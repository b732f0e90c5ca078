"""Why a device's data is (not) used: the one line the device list shows next to "online".

The energy pipeline refuses implausible readings (:mod:`meterhub.energy.plausibility`) and quarantines
register outliers (:mod:`meterhub.energy.registers`); both keep counts per circuit and per register
series. :func:`device_data` folds them into one :class:`DataStatus` per device:

* ``error`` — the device answers but nothing it sends can be used: every value of its latest poll was
  not a number ("all values NaN since 10:02:03");
* ``warning`` — values were refused or register readings quarantined in the last :data:`RECENT`
  seconds, or a register waits for a reset or a new meter to be confirmed ("register
  energy_active_import L1 quarantined: step 60.1 kWh in 1 s above the circuit's rating 69 kW");
* ``ok`` — nothing recent; the message still tells what was refused earlier, if anything.

Times are given in the site's time zone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from zoneinfo import ZoneInfo

from meterhub.energy.plausibility import RefusalReason, RefusalStatus
from meterhub.energy.register_events import GuardEvent, RegisterStatus
from meterhub.model.readings import SeriesKey

__all__ = ["RECENT", "DataState", "DataStatus", "device_data"]

#: Refusals and quarantines younger than this make a device's data state a warning [s].
RECENT = 900.0


class DataState(StrEnum):
    """How usable a device's data is (ordered by the checks in :func:`device_data`)."""

    OK = "ok"
    WARNING = "warning"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class DataStatus:
    """What the energy stage thinks of one device's data.

    state : :class:`DataState`; messages : one line per finding, the most severe first (empty: nothing
    refused since start); refused : readings refused as not a number, out of range or marked invalid
    by the device [-]; quarantined : register readings quarantined as outliers, never counted [-];
    pending : register readings of a lower (or implausibly higher) counter awaiting confirmation [-].
    """

    state: DataState = DataState.OK
    messages: tuple[str, ...] = ()
    refused: int = 0
    quarantined: int = 0
    pending: int = 0
    circuits: tuple[str, ...] = field(default=())

    @property
    def message(self) -> str | None:
        """All findings in one line ("; "-separated), or None."""
        return "; ".join(self.messages) if self.messages else None


_QUARANTINED = frozenset({RefusalReason.QUARANTINED})
_EVENT_NAMES = {GuardEvent.REBASE: "meter replacement", GuardEvent.WRAP: "counter wrap"}


def _hms(ts: float | None, zone: ZoneInfo) -> str:
    return "?" if ts is None else datetime.fromtimestamp(ts, zone).strftime("%H:%M:%S")


def _series(st: RegisterStatus) -> str:
    phase = st.key.phase.value if st.key.phase is not None else ""
    return f"{st.key.quantity} {phase}".strip()


def device_data(
    refusals: Mapping[str, RefusalStatus],
    registers: Mapping[SeriesKey, RegisterStatus],
    device_of: Mapping[str, str],
    *,
    tz: str,
    now: float,
) -> dict[str, DataStatus]:
    """Device id → :class:`DataStatus`, for every device something was refused or quarantined from.

    refusals : circuit (or device) id → what the pipeline refused (``EnergyPipeline.refusals()``).
    registers : register series → guard status (``EnergyPipeline.register_status()``).
    device_of : circuit (or device) id → the device it is read from.
    tz : the site's time zone (for the times in messages); now : the present time [s].
    """
    zone = ZoneInfo(tz)
    # device → findings (level, rank within the level, circuit, text)
    found: dict[str, list[tuple[DataState, int, str, str]]] = {}
    counts: dict[str, list[int]] = {}  # device → [refused, quarantined, pending]

    def add(device: str, circuit: str, level: DataState, rank: int, text: str) -> None:
        found.setdefault(device, []).append((level, rank, circuit, text))

    for circuit, rs in refusals.items():
        device = rs.device or device_of.get(circuit)
        if device is None:
            continue
        c = counts.setdefault(device, [0, 0, 0])
        c[0] += sum(n for reason, n in rs.by_reason.items() if reason is not RefusalReason.QUARANTINED)
        # quarantined register readings are told by the register's own line below
        text = rs.text(tz, without=_QUARANTINED)
        if not text:
            continue
        if rs.all_nan:
            add(device, circuit, DataState.ERROR, 0, text)
        elif now - rs.last <= RECENT:
            add(device, circuit, DataState.WARNING, 2, text)
        else:
            add(device, circuit, DataState.OK, 2, text)
    for st in registers.values():
        circuit = st.key.circuit
        device = device_of.get(circuit)
        if device is None or st.ok:
            continue
        c = counts.setdefault(device, [0, 0, 0])
        c[1] += st.quarantined
        c[2] += st.pending
        series = _series(st)
        if st.pending:
            add(
                device,
                circuit,
                DataState.WARNING,
                0,
                f"register {series} waits since {_hms(st.pending_since, zone)}: {st.reason}; "
                "a reset or a new meter is counted once it holds or is confirmed",
            )
        if st.quarantined:
            n = st.quarantined
            detail = f": {st.reason}" if st.reason else ""
            text = (
                f"register {series} quarantined{detail} "
                f"({n} reading{'s' if n > 1 else ''} never counted, last at {_hms(st.last_quarantined, zone)})"
            )
            recent = st.last_quarantined is not None and now - st.last_quarantined <= RECENT
            add(device, circuit, DataState.WARNING if recent else DataState.OK, 1, text)
        for event, ts in st.confirmed[-1:]:
            name = _EVENT_NAMES.get(event, event.value)
            add(device, circuit, DataState.OK, 3, f"register {series}: {name} confirmed at {_hms(ts, zone)}")
        if st.armed:
            add(
                device,
                circuit,
                DataState.OK,
                3,
                f"register {series}: {st.armed}; its next new counter is accepted",
            )
    out: dict[str, DataStatus] = {}
    order = {DataState.ERROR: 0, DataState.WARNING: 1, DataState.OK: 2}
    for device, items in found.items():
        items.sort(key=lambda f: (order[f[0]], f[1]))
        circuits = tuple(sorted({f[2] for f in items}))
        several = len(circuits) > 1  # name the circuit when the device has findings on several
        refused, quarantined, pending = counts.get(device, [0, 0, 0])
        out[device] = DataStatus(
            state=items[0][0],
            messages=tuple(f"{f[2]}: {f[3]}" if several else f[3] for f in items),
            refused=refused,
            quarantined=quarantined,
            pending=pending,
            circuits=circuits,
        )
    for device, (refused, quarantined, pending) in counts.items():
        if device not in out:
            out[device] = DataStatus(refused=refused, quarantined=quarantined, pending=pending)
    return out
