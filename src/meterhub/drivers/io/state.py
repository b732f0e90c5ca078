"""Persisted state of IO points: pulse totals with the last device counter values, and run hours.

One small JSON file per device (``<data_dir>/io/<device>.json``), written atomically (temporary file,
then rename) so a crash leaves either the old or the new file. With the device counter stored next to
the total, pulses counted by the device while the gateway was down are picked up after a restart::

    {"version": 1, "pulses": {"gas": {"pulses": 30, "last_raw": 130, "resets": 0}},
     "hours": {"pump": 7260.0}}

``hours`` holds the accepted active time of digital inputs [s].
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from meterhub.drivers.io.pulse import PulseState

__all__ = ["IOState", "load_state", "save_state", "state_path"]

log = logging.getLogger("meterhub.io")


@dataclass
class IOState:
    """The persisted state of one device's IO points."""

    pulses: dict[str, PulseState] = field(default_factory=dict)
    hours: dict[str, float] = field(default_factory=dict)  # active time per digital point [s]


def state_path(data_dir: str | Path, device: str) -> Path:
    """Where the IO state of ``device`` lives."""
    return Path(data_dir) / "io" / f"{device}.json"


def load_state(path: Path) -> IOState:
    """The stored state; empty if the file does not exist. A damaged file or entry is logged and
    ignored (counting restarts from the configured ``initial`` index rather than stopping the gateway)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return IOState()
    except (OSError, ValueError) as exc:
        log.error("IO state %s is unreadable (%s); pulse totals start again from 'initial'", path, exc)
        return IOState()
    if not isinstance(data, dict):
        log.error("IO state %s is not a JSON object; ignored", path)
        return IOState()
    out = IOState()
    for point, item in (data.get("pulses") or {}).items():
        try:
            out.pulses[point] = PulseState.from_dict(item)
        except (TypeError, ValueError, AttributeError) as exc:
            log.error("IO state %s: point %s: %s; ignored", path, point, exc)
    for point, seconds in (data.get("hours") or {}).items():
        if isinstance(seconds, int | float) and math.isfinite(seconds) and seconds >= 0:
            out.hours[point] = float(seconds)
        else:
            log.error(
                "IO state %s: point %s: active time %r is not a non-negative number; ignored",
                path,
                point,
                seconds,
            )
    return out


def save_state(path: Path, state: IOState) -> None:
    """Write the state atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    doc = {
        "version": 1,
        "pulses": {k: v.to_dict() for k, v in sorted(state.pulses.items())},
        "hours": dict(sorted(state.hours.items())),
    }
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(json.dumps(doc, indent=1))
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)
