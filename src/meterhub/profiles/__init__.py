"""Device profiles shipped with meterhub (YAML data, format in ``SCHEMA.md``).

``get_profile("eastron-sdm630")`` returns the validated :class:`~meterhub.profiles.schema.Profile`.
The format (:mod:`.schema`, :mod:`.datatypes`) lives here, below the drivers and the simulators that
read it (this package imports only the model, config and errors layers).
Extra directories (a site's own profiles) can be added with :func:`add_profile_dir`; a profile there
overrides a shipped one of the same id.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from meterhub.profiles.schema import Profile, ProfileError, load_profile_file

__all__ = [
    "PROFILE_DIR",
    "Profile",
    "ProfileError",
    "add_profile_dir",
    "all_profiles",
    "get_profile",
    "profile_ids",
    "remove_profile_dir",
]

PROFILE_DIR = Path(__file__).resolve().parent
_DIRS: list[Path] = [PROFILE_DIR]


def add_profile_dir(path: str | Path) -> None:
    """Search ``path`` (before the shipped profiles) for ``<id>.yaml``."""
    p = Path(path).resolve()
    if p not in _DIRS:
        _DIRS.insert(0, p)
        _load.cache_clear()


def remove_profile_dir(path: str | Path) -> None:
    """Stop searching ``path`` (added by :func:`add_profile_dir`); the shipped profiles stay."""
    p = Path(path).resolve()
    if p in _DIRS and p != PROFILE_DIR:
        _DIRS.remove(p)
        _load.cache_clear()


def _path_of(profile_id: str) -> Path | None:
    for d in _DIRS:
        candidate = d / f"{profile_id}.yaml"
        if candidate.is_file():
            return candidate
    return None


def profile_ids() -> list[str]:
    """Ids of every available profile, sorted."""
    return sorted({p.stem for d in _DIRS for p in d.glob("*.yaml")})


@lru_cache(maxsize=256)
def _load(path: Path, mtime: float) -> Profile:
    return load_profile_file(path)


def get_profile(profile_id: str) -> Profile:
    """The validated profile ``profile_id``; :class:`ProfileError` if unknown or invalid."""
    path = _path_of(profile_id)
    if path is None:
        known = ", ".join(profile_ids())
        raise ProfileError([f"unknown profile {profile_id!r}; known profiles: {known}"])
    return _load(path, path.stat().st_mtime)


def all_profiles() -> list[Profile]:
    return [get_profile(i) for i in profile_ids()]
