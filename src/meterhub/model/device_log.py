"""What a device logs itself, handed from the sources to the storage's logs.

It lives in the model layer because the sources (:mod:`meterhub.drivers`) and the storage backend
(:mod:`meterhub.storage.events`) must not know each other (as :mod:`meterhub.model.pq`).

* :class:`DeviceEvent`: one entry of a meter's own event log (a DLMS/COSEM event log, Profile generic
  of IEC 62056-6-1 group 99.98): the meter's capture time, the log it came from, the meter's event code
  and its text.
* :class:`FilledRange`: a range of one stored series that a source filled from a device's memory (a
  DLMS meter's load profile after an outage or a gateway restart): the values in it are the meter's,
  not polled ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["METER_PROFILE", "DeviceEvent", "FilledRange"]

#: ``FilledRange.source`` of values read from a meter's load profile.
METER_PROFILE = "meter-profile"


@dataclass(frozen=True, slots=True)
class DeviceEvent:
    """One entry of a device's own event log.

    device : the device id of the site file.
    ts : the device's capture time of the entry [s since the epoch, UTC].
    log : which of its logs: ``standard`` (0.0.99.98.0.255), ``alarm`` (0.0.99.98.1.255) … (see
        :data:`meterhub.drivers.dlms.source.EVENT_LOGS`).
    code : the device's event code (the value of its event code object, e.g. 0.0.96.11.1.255).
    text : what the code means (the driver's documented mapping; ``event code N`` when unknown).
    """

    device: str
    ts: float
    log: str
    code: int
    text: str

    def as_dict(self) -> dict[str, Any]:
        return {"device": self.device, "ts": self.ts, "log": self.log, "code": self.code, "text": self.text}


@dataclass(frozen=True, slots=True)
class FilledRange:
    """A range of a stored series filled from a device's memory.

    series : the series key as text, ``circuit/quantity/phase`` (``str`` of
        :class:`~meterhub.model.readings.SeriesKey`).
    start, end : the first and last filled value's time [s since the epoch, UTC], both included.
    device : the device whose memory the values came from.
    source : where in it: :data:`METER_PROFILE` (a meter's load profile).
    """

    series: str
    start: float
    end: float
    device: str
    source: str = METER_PROFILE

    def as_dict(self) -> dict[str, Any]:
        return {
            "series": self.series,
            "start": self.start,
            "end": self.end,
            "device": self.device,
            "source": self.source,
        }
