"""The energy pipeline's state file: JSON read and written atomically, never raising.

Demand windows, maximum demands, billing and the raw register baselines survive a restart here
(registers themselves are persisted by the storage, in the flush transaction).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TypeAlias

from meterhub.model.readings import SeriesKey

__all__ = ["Json", "numbers", "read_json", "write_json"]

log = logging.getLogger(__name__)

#: A JSON value (the state file, the billing status).
Json: TypeAlias = "dict[str, Json] | list[Json] | str | int | float | bool | None"


def read_json(paths: Iterable[Path]) -> dict[str, Json]:
    """The JSON objects in ``paths`` merged in order; a missing, unreadable or broken file is logged
    and skipped (the state starts afresh)."""
    state: dict[str, Json] = {}
    for path in paths:
        if not path.exists():
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            log.error("%s: cannot read the energy state (%s); it starts afresh", path, exc)
            continue
        if isinstance(data, dict):
            state.update(data)
    return state


def numbers(section: Json) -> dict[SeriesKey, float]:
    """A state-file section ``{"circuit/quantity/phase": number}`` → {SeriesKey: number}; bad entries
    are skipped."""
    out: dict[SeriesKey, float] = {}
    if not isinstance(section, dict):
        return out
    for k, v in section.items():
        if isinstance(v, int | float) and not isinstance(v, bool):
            try:
                out[SeriesKey.parse(k)] = float(v)
            except ValueError:
                log.warning("energy state: %r is no series; skipped", k)
    return out


def write_json(path: Path, data: dict[str, Json]) -> None:
    """Replace ``path`` atomically with ``data`` as JSON; a failure is logged, not raised."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data), encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        log.error("%s: cannot write the energy state: %s", path, exc)
