"""Cross-checks of the site file's ``io:`` section against devices, buses and profiles.

The section's models live in :mod:`meterhub.config.io` (the schema is a leaf) and are re-exported here
for the IO drivers. :func:`check_io` is one of :data:`meterhub.checks.SITE_CHECKS`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from meterhub.config.io import (
    DEFAULT_W1_ROOT,
    AnalogInPoint,
    AnalogOutPoint,
    AnalogSignal,
    Contact,
    DigitalFunction,
    DigitalPoint,
    IOPoint,
    IOSection,
    Medium,
    PulsePoint,
    PulseUnit,
    RelayMode,
    RelayPoint,
    TemperaturePoint,
)
from meterhub.config.loader import Loc
from meterhub.config.schema import BusKind, SiteConfig
from meterhub.model.quantities import Q

if TYPE_CHECKING:  # for the annotation only: the Modbus package imports this one
    from meterhub.drivers.modbus.profile import Profile

#: Looks up a device profile by id; None when it is unknown or invalid (the Modbus checks report that).
ProfileLookup = Callable[[str], "Profile | None"]

__all__ = [
    "DEFAULT_W1_ROOT",
    "RAW_QUANTITY",
    "AnalogInPoint",
    "AnalogOutPoint",
    "AnalogSignal",
    "Contact",
    "DigitalFunction",
    "DigitalPoint",
    "IOPoint",
    "IOSection",
    "Medium",
    "ProfileLookup",
    "PulsePoint",
    "PulseUnit",
    "RelayMode",
    "RelayPoint",
    "TemperaturePoint",
    "check_io",
    "io_section",
]


def io_section(config: SiteConfig) -> IOSection:
    """The ``io`` section of a site (empty when absent)."""
    return config.io if config.io is not None else IOSection()


#: The raw profile quantity each point kind reads (its channel space on the device). An input may
#: carry one digital point (its state) and one pulse point (its counter) at the same time.
RAW_QUANTITY: dict[str, str] = {
    "pulse": Q.PULSE_COUNT,
    "digital": Q.DIGITAL_INPUT,
    "relay": Q.RELAY_OUTPUT,
    "analog-in": Q.ANALOG_INPUT,
    "analog-out": Q.ANALOG_OUTPUT,
}


def _profile_issue(profile_of: ProfileLookup, profile_id: str, kind: str, channel: int) -> str | None:
    """Why a device with ``profile_id`` cannot carry a ``kind`` point on ``channel``, or None.

    Unknown or invalid profiles are left to the Modbus profile checks (None here)."""
    if profile_id == "linux-w1":
        return (
            f"a {kind} point needs an IO module (DIO-4/2, AIO-2/2, pulse concentrator), not the 1-wire master"
        )
    profile = profile_of(profile_id)
    if profile is None:
        return None
    raw = RAW_QUANTITY[kind]
    channels = sorted({e.channel for e in profile.registers if e.quantity == raw and e.channel is not None})
    if channel not in channels:
        have = ", ".join(map(str, channels)) if channels else "none"
        return f"profile {profile_id} has no {raw} channel {channel} (channels: {have})"
    if kind in ("relay", "analog-out") and not any(
        w.quantity == raw and w.channel == channel for w in profile.writable
    ):
        return f"profile {profile_id} has no writable {raw} on channel {channel}"
    return None


def check_io(config: SiteConfig, profile_of: ProfileLookup) -> Iterable[tuple[Loc, str]]:
    """Cross-check the ``io`` section against the site: known devices on fitting buses and profiles,
    unique point ids (also against circuit ids), each input or output channel used once.

    ``profile_of`` finds a device's profile (injected: the profile registry sits above this module)."""
    section = config.io
    if section is None:
        return
    devices = {d.id: d for d in config.devices}
    buses = {b.id: b for b in config.buses}
    circuits = {c.id for c in config.circuits}
    seen: dict[str, int] = {}
    used: dict[tuple[str, str, int], str] = {}
    sensors: dict[str, str] = {}
    for i, p in enumerate(section.points):
        where: Loc = ("io", "points", i)
        if p.id in seen:
            yield (*where, "id"), f"duplicate point id {p.id!r} (also io.points[{seen[p.id]}])"
        seen.setdefault(p.id, i)
        if p.id in circuits:
            yield (*where, "id"), f"point id {p.id!r} is also a circuit id; readings would mix"
        dev = devices.get(p.device)
        if dev is None:
            known = ", ".join(sorted(devices)) or "none defined"
            yield (*where, "device"), f"unknown device {p.device!r}; known devices: {known}"
            continue
        bus = buses.get(dev.bus)
        if isinstance(p, TemperaturePoint):
            if bus is not None and bus.kind is not BusKind.IO:
                yield (
                    (*where, "device"),
                    f"a 1-wire probe needs a device on a bus of kind 'io'; {dev.id!r} is on "
                    f"{bus.kind.value} bus {bus.id!r}",
                )
            if p.sensor in sensors:
                yield (*where, "sensor"), f"probe {p.sensor} is already used by point {sensors[p.sensor]!r}"
            sensors.setdefault(p.sensor, p.id)
            continue
        problem = _profile_issue(profile_of, dev.profile, p.kind, p.channel)
        if problem is not None:
            yield (*where, "channel"), f"device {dev.id!r}: {problem}"
            continue
        key = (p.device, RAW_QUANTITY[p.kind], p.channel)
        if key in used:
            yield (
                (*where, "channel"),
                f"{RAW_QUANTITY[p.kind]} channel {p.channel} of device {p.device!r} is already used by "
                f"point {used[key]!r}",
            )
        used.setdefault(key, p.id)
