"""Secrets named in the site file (``*_env`` / ``*_file``): read when a component starts, never stored in the
configuration, logged or echoed. An error names the variable or the file, never the value."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

__all__ = ["SecretError", "read_secret"]


class SecretError(ValueError):
    """A secret that cannot be read; the message names where it was looked for."""


def read_secret(
    owner: str,
    field: str,
    env_name: str | None,
    file: str | Path | None,
    *,
    environ: Mapping[str, str] | None = None,
    blank_ok: bool = True,
) -> str | None:
    """The secret ``field`` of ``owner`` (e.g. ``"publish up"``, ``"token"``) from the environment variable
    ``env_name`` or the file ``file``; None when neither is given.

    ``blank_ok``: a password keeps its blanks (only the file's final line break is removed); a token
    (``blank_ok=False``) is stripped and must not be empty."""
    env = os.environ if environ is None else environ
    if env_name is not None:
        value = env.get(env_name)
        if value is None or (not blank_ok and not value.strip()):
            empty = "" if blank_ok else " or empty"
            raise SecretError(f"{owner}: environment variable {env_name} ({field}_env) is not set{empty}")
        return value if blank_ok else value.strip()
    if file is not None:
        try:
            text = Path(file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
            raise SecretError(f"{owner}: cannot read {field}_file {file}: {reason}") from None
        text = text.rstrip("\r\n") if blank_ok else text.strip()
        if not blank_ok and not text:
            raise SecretError(f"{owner}: {field}_file {file} is empty")
        return text
    return None
