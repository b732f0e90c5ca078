"""Audit entries for configuration changes made through the API: who changed which section, from what
to what.

:func:`config_changes` compares two site configurations section by section (the top-level keys of the
site file: ``site``, ``buses``, ``devices``, ``circuits``, ``tariffs`` …). For a section that is a list
of items with an ``id`` only the items added, removed or changed are kept, keyed by id (``None`` on
the side where an item does not exist), so adding one circuit to a site of forty records one circuit,
not the whole list. :func:`audit_config_write` turns them into one
:class:`~meterhub.model.audit.AuditEntry` per changed section (action ``config.write``, target the
section), handed to the gateway's auditor (the audit log, :mod:`meterhub.storage.events`).

Values of keys named like a secret (``password``, ``token``, ``secret``) are replaced by ``"***"``; the
site file names secrets by file or environment variable (``password_file``, ``password_env``), whose
names are kept.
"""

from __future__ import annotations

from typing import Any

from meterhub.config.schema import SiteConfig
from meterhub.model.audit import AuditEntry, Auditor

__all__ = ["CONFIG_WRITE", "audit_config_write", "config_changes"]

#: The audit action of a configuration change.
CONFIG_WRITE = "config.write"
_SECRET_WORDS = ("password", "token", "secret")
_HIDDEN = "***"


def _redact(value: Any) -> Any:
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            name = str(k).lower()
            secret = any(w in name for w in _SECRET_WORDS) and not name.endswith(("_file", "_env"))
            out[k] = _HIDDEN if secret and isinstance(v, str) and v else _redact(v)
        return out
    if isinstance(value, list):
        return [_redact(v) for v in value]
    return value


def _by_id(items: Any) -> dict[str, Any] | None:
    """``{id: item}`` of a list of items that all have a distinct ``id``; None for anything else."""
    if not isinstance(items, list) or not all(isinstance(i, dict) and "id" in i for i in items):
        return None
    keyed = {str(i["id"]): i for i in items}
    return keyed if len(keyed) == len(items) else None


def config_changes(before: SiteConfig, after: SiteConfig) -> list[tuple[str, Any, Any]]:
    """(section, before, after) of every top-level section that differs, JSON-ready and redacted;
    list sections of items with ids reduced to the changed items (see the module docstring)."""
    old = before.model_dump(mode="json")
    new = after.model_dump(mode="json")
    out: list[tuple[str, Any, Any]] = []
    for section in [*old, *(k for k in new if k not in old)]:
        a, b = old.get(section), new.get(section)
        if a == b:
            continue
        ka, kb = _by_id(a if a is not None else []), _by_id(b if b is not None else [])
        if ka is not None and kb is not None:
            ids = [i for i in [*ka, *(j for j in kb if j not in ka)] if ka.get(i) != kb.get(i)]
            a = {i: ka.get(i) for i in ids}
            b = {i: kb.get(i) for i in ids}
        out.append((section, _redact(a), _redact(b)))
    return out


def audit_config_write(
    auditor: Auditor,
    *,
    actor: str,
    before: SiteConfig,
    after: SiteConfig,
    ts: float,
    where: str,
) -> int:
    """Record one ``config.write`` entry per changed section; return how many were recorded.

    actor : the user (or API token's user) who made the change. ts : when [s since the epoch, UTC].
    where : the request that made it (``PATCH /api/v1/circuits/main``), kept in the entry's ``extra``.
    """
    changes = config_changes(before, after)
    for section, old, new in changes:
        auditor.record(
            AuditEntry(
                ts=ts,
                actor=actor,
                action=CONFIG_WRITE,
                target=section,
                before=old,
                after=new,
                extra={"request": where},
            )  # fmt: skip
        )
    return len(changes)
