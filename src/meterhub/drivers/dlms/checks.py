"""Site-file checks for meters read by OBIS code: ``kind: iec62056-21`` and ``kind: dlms`` buses.

Registered in :data:`meterhub.checks.SITE_CHECKS`, so ``meterhub check-config``, ``run`` and the API's
configuration edits report these at the device's line (``site.yaml:LINE: devices[i].profile: …``):

* each device on such a bus names a shipped OBIS profile (``src/meterhub/profiles/obis/*.yaml``), since a
  Modbus profile or a typo would leave the meter offline with only a log line;
* one enabled meter per bus: an optical port (IEC 62056-21: one optical head on one meter, point to
  point) has exactly one meter behind it, and a dlms bus reads one server (several logical devices or
  several HDLC stations on one bus are not implemented; a second meter would only be shown offline).
"""

from __future__ import annotations

from collections.abc import Iterable

from meterhub.config.reader import Loc
from meterhub.config.schema import BusKind, SiteConfig
from meterhub.profiles.obis import get_obis_profile
from meterhub.profiles.schema import ProfileError

__all__ = ["check_meter_buses"]

_KINDS = {BusKind.IEC62056_21: "an optical port (IEC 62056-21) is point to point", BusKind.DLMS: ""}


def check_meter_buses(cfg: SiteConfig) -> Iterable[tuple[Loc, str]]:
    """OBIS profiles that exist, and one meter per ``iec62056-21`` / ``dlms`` bus."""
    for bus in cfg.buses:
        if bus.kind not in _KINDS:
            continue
        first: str | None = None
        for i, d in enumerate(cfg.devices):
            if d.bus != bus.id:
                continue
            try:
                get_obis_profile(d.profile)
            except ProfileError as exc:
                yield ("devices", i, "profile"), exc.issues[0] if exc.issues else str(exc)
            if not d.enabled:
                continue
            if first is None:
                first = d.id
                continue
            why = (
                _KINDS[bus.kind]
                or "one meter per dlms bus (several logical devices on one bus are not implemented)"
            )
            yield (
                ("devices", i, "bus"),
                f"bus {bus.id!r} ({bus.kind.value}) already has meter {first!r}: {why}; "
                "give this meter a bus of its own or set enabled: false",
            )
