"""Field types shared by every section of the site schema.

A site file is typed strictly: a number is never read from text, a boolean never from a number or from
``yes``/``on``, an integer never from ``true`` or ``1.5``, and infinities and NaN are refused. YAML 1.2
already reads ``yes`` and ``1000:1`` as text (:mod:`meterhub.config.reader`); the models then refuse text
where a number or a flag belongs instead of converting it, so a wrong type is one clear error.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, Strict, model_validator

__all__ = ["LAX", "MAX_RATIO_SIDE", "MIN_RATIO_SIDE", "Identifier", "NoBool", "Ratio", "StrictModel"]


class StrictModel(BaseModel):
    """Base of every site-file model: unknown keys are errors, values are not coerced between types,
    numbers are finite. Enum fields are written ``Annotated[MyEnum, LAX]`` so that their text values are accepted."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


#: Lets a field accept its enum's values as text inside a :class:`StrictModel` (strict mode would ask for
#: the enum member itself): ``kind: Annotated[BusKind, LAX]``.
LAX = Strict(False)


def _no_bool(value: Any) -> Any:
    # A Literal[1, 5, ...] would take True as 1; a flag is never a number in a site file.
    if isinstance(value, bool):
        raise ValueError(f"expected a number, not {str(value).lower()}")
    return value


#: Place before a ``Literal`` of integers so that ``true`` is not read as 1.
NoBool = BeforeValidator(_no_bool)

#: Lower-case id used for panels, buses, devices, circuits and points (also a MQTT topic level).
Identifier = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]

_NUMBER = r"(\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)"  # one way to match each: linear time
_RATIO = re.compile(rf"^\s*{_NUMBER}\s*[/:]\s*{_NUMBER}\s*$")
#: Longest ratio text read (``"0.000001/1000000"`` is 16 characters).
_RATIO_TEXT = 40
#: Largest primary or secondary of a ratio: 1 MV or 1 MA is beyond any transformer a gateway meters.
MAX_RATIO_SIDE = 1e6
#: Smallest side: 1 µA or 1 µV; below that a ratio is a typo, not a sensor.
MIN_RATIO_SIDE = 1e-6


class Ratio(StrictModel):
    """A transformer ratio primary/secondary, written ``"800/5"``, ``"1000:1"`` or as a plain number.

    Both sides are finite and between 10⁻⁶ and 10⁶ (a 1 MV or 1 MA primary) [unit of the side]."""

    primary: float = Field(ge=MIN_RATIO_SIDE, le=MAX_RATIO_SIDE)
    secondary: float = Field(ge=MIN_RATIO_SIDE, le=MAX_RATIO_SIDE)

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError(f"a ratio is PRIMARY/SECONDARY, e.g. '800/5', not {str(value).lower()}")
        if isinstance(value, int | float):
            return {"primary": value, "secondary": 1.0}
        if isinstance(value, str):
            m = _RATIO.match(value) if len(value) <= _RATIO_TEXT else None
            if not m:
                shown = value if len(value) <= _RATIO_TEXT else value[:_RATIO_TEXT] + "…"
                raise ValueError(f"ratio {shown!r} is not of the form PRIMARY/SECONDARY, e.g. '800/5'")
            primary, secondary = float(m.group(1)), float(m.group(2))
            if not (math.isfinite(primary) and math.isfinite(secondary)):
                raise ValueError(f"ratio {value!r} is not a finite number")
            return {"primary": primary, "secondary": secondary}
        return value

    @property
    def value(self) -> float:
        """primary / secondary [-]"""
        return self.primary / self.secondary

    def __str__(self) -> str:
        return f"{self.primary:g}/{self.secondary:g}"
