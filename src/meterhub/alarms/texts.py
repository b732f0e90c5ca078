"""The texts of alarms: a rule's title and message with their placeholders filled in, and values as shown.

Placeholders are those :data:`meterhub.config.alarms.PLACEHOLDERS` allows (``{value}``, ``{limit}``,
``{unit}``, ``{target}``, ``{phase}``, ``{quantity}``, ``{time}``, ``{rule}``, ``{severity}``), with an
optional format spec (``{value:.1f}``).
"""

from __future__ import annotations

import math
import re
import string
from typing import Any

__all__ = ["render", "shown"]

_SPACES = re.compile(r" {2,}")


class _Fields(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def render(template: str, values: dict[str, Any]) -> str:
    """Fill ``{value}`` … in; a format spec that does not fit the value falls back to plain text."""
    try:
        out = string.Formatter().vformat(template, (), _Fields(values))
    except (ValueError, TypeError, KeyError, IndexError):
        out = template
        for k, v in values.items():
            out = out.replace("{" + k + "}", str(v))
    # an empty placeholder (a dimensionless unit) leaves no double space or "( x )"
    return _SPACES.sub(" ", out).replace(" )", ")").strip()


def shown(v: float | None) -> float | None:
    """A value as shown in texts and the API: 4 significant digits (no float noise such as 0.8200000001)."""
    if v is None or not math.isfinite(v):
        return None
    return float(f"{v:.4g}")
