"""The profile format, re-exported from :mod:`meterhub.profiles.schema` where it lives (the driver and
the simulator both read profiles; neither owns their format)."""

from __future__ import annotations

from meterhub.profiles.schema import (
    Function,
    IdentEntry,
    Point,
    Profile,
    ProfileError,
    ProfileKind,
    RegisterEntry,
    WritableEntry,
    load_profile_file,
    parse_profile,
    unit_factor,
)

__all__ = [
    "Function",
    "IdentEntry",
    "Point",
    "Profile",
    "ProfileError",
    "ProfileKind",
    "RegisterEntry",
    "WritableEntry",
    "load_profile_file",
    "parse_profile",
    "unit_factor",
]
