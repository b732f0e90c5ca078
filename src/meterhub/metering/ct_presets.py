"""The current sensors a site can be set up with: a small typed loader for ``ct_presets.yaml``.

The hardware catalogue is data (``ct_presets.yaml`` beside this module, shipped as package data): each
preset names its CT kind and ratio as the site file writes them (``ct.kind``, ``ct.ratio``), its rated
current and phase error as the datasheet gives them, and the document those figures come from. The web
UI's CT picker offers them; a chosen preset becomes the circuit's ``ct`` entry.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from meterhub.config.schema import CTKind, Ratio
from meterhub.errors import ConfigurationError

__all__ = ["PRESETS_FILE", "CTPreset", "ct_presets", "load_ct_presets"]

#: The shipped catalogue.
PRESETS_FILE = Path(__file__).with_name("ct_presets.yaml")

_ARCMIN_PER_DEGREE = 60.0


class CTPreset(BaseModel):
    """One current sensor of the catalogue."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")
    kind: CTKind
    ratio: str = Field(description="primary/secondary as the site file writes it: A/A, or A/V")
    rated_current: float | None = Field(gt=0, description="rated primary current [A]; None: none of its own")
    phase_error_arcmin: float = Field(ge=0, le=600, description="phase error at rated current [arc minutes]")
    label: str = Field(min_length=1)
    source: str = Field(min_length=1, description="the document the figures come from")

    @field_validator("ratio")
    @classmethod
    def _site_ratio(cls, v: str) -> str:
        try:  # the site schema must accept it: the picker writes it into the circuit's ct.ratio
            Ratio.model_validate(v)
        except ValidationError:
            raise ValueError(f"ratio {v!r} is not of the form PRIMARY/SECONDARY, e.g. '800/5'") from None
        return v

    @property
    def phase_error(self) -> float:
        """Phase error at rated current [°]."""
        return self.phase_error_arcmin / _ARCMIN_PER_DEGREE

    @property
    def ratio_value(self) -> Ratio:
        """The ratio as the site schema parses it (primary/secondary [A/A or A/V])."""
        return Ratio.model_validate(self.ratio)


class _Catalogue(BaseModel):
    model_config = ConfigDict(extra="forbid")

    presets: list[CTPreset] = Field(min_length=1)


def load_ct_presets(path: Path = PRESETS_FILE) -> tuple[CTPreset, ...]:
    """Read and check a CT preset file; raises :class:`~meterhub.errors.ConfigurationError` naming the
    file and the entry when it cannot be used (a bad field, a ratio the site schema refuses, a duplicate id).
    """
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        catalogue = _Catalogue.model_validate(data)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigurationError(f"{path}: cannot read the CT presets: {exc}") from None
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigurationError(f"{path}: {where}: {first['msg']}") from None
    seen: set[str] = set()
    for i, p in enumerate(catalogue.presets):
        if p.id in seen:
            raise ConfigurationError(f"{path}: presets.{i}.id: {p.id!r} is given twice")
        seen.add(p.id)
    return tuple(catalogue.presets)


@cache
def ct_presets() -> tuple[CTPreset, ...]:
    """The shipped catalogue (read once)."""
    return load_ct_presets()
