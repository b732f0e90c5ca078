"""Edits of a site configuration as pure functions: a :class:`SiteConfig` in, a new one out.

The web API (and any other editor) changes a site through these; they never modify the configuration
they are given, do no I/O and know nothing of HTTP. What they refuse is a typed error of
:mod:`meterhub.errors`:

* :class:`~meterhub.errors.NotFoundError` — the circuit or device named does not exist;
* :class:`~meterhub.errors.ConflictError` — an id that exists already, a device that circuits still use;
* :class:`InvalidEdit` (a :class:`~meterhub.errors.ConfigurationError`) — a value the schema refuses, with
  the location of each problem inside the edited item (``("ct", "ratio")``).

The result is checked by the schema item by item; cross-references between sections (a circuit's device,
a bus's power budget …) are checked when the caller applies the new configuration
(:meth:`meterhub.runtime.Gateway.update_config`).
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol, TypeVar
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from meterhub.config.energy import (
    Co2Period,
    Co2Settings,
    HistoryError,
    TariffPeriod,
    TariffSettings,
    effective_time,
    tariff_periods,
)
from meterhub.config.loader import ConfigIssue, Loc
from meterhub.config.schema import Circuit, Device, EnergyConfig, SiteConfig, SiteInfo
from meterhub.errors import ConfigurationError, ConflictError, NotFoundError
from meterhub.model.topology import PHASES_OF_WIRING, Wiring

__all__ = [
    "SITE_OPTIONS",
    "InvalidEdit",
    "add_circuit",
    "add_device",
    "deep_merge",
    "index_of",
    "patch_circuit",
    "patch_device",
    "patch_site",
    "remove_circuit",
    "remove_device",
    "replace_tariffs",
]

#: Where the problems of an edit are reported (ConfigIssue.file): not a file, an edit.
EDIT = "<edit>"

#: Options of the ``site:`` section that :func:`patch_site` changes (``None`` leaves one as it is).
SITE_OPTIONS = ("name", "timezone", "language", "currency", "co2_factor")


class InvalidEdit(ConfigurationError):
    """An edit the schema refuses. ``issues`` locates each problem inside the edited item."""

    def __init__(self, issues: Sequence[ConfigIssue]) -> None:
        super().__init__("; ".join(f"{i.field}: {i.message}" for i in issues))
        self.issues = list(issues)


class _HasId(Protocol):
    @property
    def id(self) -> str: ...


def _issue(loc: Loc, message: str) -> ConfigIssue:
    return ConfigIssue(file=EDIT, line=None, loc=loc, message=message)


def _invalid(exc: ValidationError) -> InvalidEdit:
    return InvalidEdit(
        [
            _issue(tuple(e["loc"]), e["msg"].removeprefix("Value error, "))
            for e in exc.errors(include_url=False)
        ]
    )


def deep_merge(base: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``changes`` applied: nested mappings merge key by key, anything else replaces.

    A ``None`` in ``changes`` replaces (clears) the value; a key missing from ``changes`` keeps it.
    """
    out = dict(base)
    for k, v in changes.items():
        old = out.get(k)
        if isinstance(v, Mapping) and isinstance(old, Mapping):
            out[k] = deep_merge(old, v)
        else:
            out[k] = v
    return out


def index_of(items: Sequence[_HasId], item_id: str, what: str) -> int:
    """Position of the item with ``item_id``; :class:`NotFoundError` ("unknown circuit 'x'") when none."""
    for i, item in enumerate(items):
        if item.id == item_id:
            return i
    raise NotFoundError(f"unknown {what} {item_id!r}")


_Item = TypeVar("_Item", Circuit, Device)


def _validated(model: type[_Item], item: Mapping[str, Any]) -> _Item:
    """``item`` checked by the schema of ``model``; :class:`InvalidEdit` locates what it refuses."""
    try:
        return model.model_validate(dict(item))
    except ValidationError as exc:
        raise _invalid(exc) from None


def _placed(items: Sequence[_Item], index: int | None, item: _Item) -> list[_Item]:
    """A new list: ``items`` with ``item`` at ``index`` (None: appended)."""
    out = list(items)
    if index is None:
        out.append(item)
    else:
        out[index] = item
    return out


def _with_circuit(cfg: SiteConfig, index: int | None, item: Mapping[str, Any]) -> SiteConfig:
    circuit = _validated(Circuit, item)
    new = cfg.model_copy(deep=True)
    new.circuits = _placed(new.circuits, index, circuit)
    return new


def _with_device(cfg: SiteConfig, index: int | None, item: Mapping[str, Any]) -> SiteConfig:
    device = _validated(Device, item)
    new = cfg.model_copy(deep=True)
    new.devices = _placed(new.devices, index, device)
    return new


def _ct(changes: Mapping[str, Any]) -> dict[str, Any]:
    """A CT patch: the fields given, without those left ``None`` (a CT always has a kind and ratio)."""
    return {k: v for k, v in changes.items() if v is not None}


# -- circuits -----------------------------------------------------------------------------------------
def patch_circuit(
    cfg: SiteConfig, circuit_id: str, changes: Mapping[str, Any], *, now: float | None = None
) -> SiteConfig:
    """Change fields of a circuit; omitted fields stay, ``None`` clears an optional one.

    A changed CT ratio is effective-dated: the ratio in force until ``now`` [s, UTC; default: the clock]
    moves into ``ct.ratio_history`` with its start and ``ct.ratio_from`` becomes ``now``, in the site's time
    zone — readings already stored are never rescaled.

    A changed ``wiring`` without ``channels`` takes as many consecutive channels from the circuit's first
    one as the wiring has phases (:data:`~meterhub.model.topology.PHASES_OF_WIRING`: 3P4W → 3) and drops
    an explicit ``phases`` list. A ``ct`` patch merges into the circuit's CT.
    """
    i = index_of(cfg.circuits, circuit_id, "circuit")
    current = cfg.circuits[i].model_dump(mode="json")
    edit = dict(changes)
    if edit.get("ct") is not None:
        edit["ct"] = _ct(edit["ct"])
    if "wiring" in edit and "channels" not in edit:
        try:
            n = len(PHASES_OF_WIRING[Wiring(edit["wiring"])])
        except ValueError:
            raise InvalidEdit([_issue(("wiring",), f"unknown wiring {edit['wiring']!r}")]) from None
        first = current["channels"][0]
        edit["channels"] = [first + k for k in range(n)]
        edit.setdefault("phases", None)
    merged = deep_merge(current, edit)
    new = _with_circuit(cfg, i, merged)
    old_ct, new_ct = cfg.circuits[i].ct, new.circuits[i].ct
    if new_ct.ratio.value != old_ct.ratio.value and new_ct.ratio_history == old_ct.ratio_history:
        when = time.time() if now is None else now
        stamp = datetime.fromtimestamp(int(when), ZoneInfo(cfg.site.timezone)).isoformat()
        history = list(current["ct"].get("ratio_history", []))
        if stamp != old_ct.ratio_from:  # a second change within the same second corrects the first
            history.append({"from": old_ct.ratio_from, "ratio": str(old_ct.ratio)})
        merged["ct"] = {**merged["ct"], "ratio_from": stamp, "ratio_history": history}
        new = _with_circuit(cfg, i, merged)
    return new


def add_circuit(cfg: SiteConfig, item: Mapping[str, Any]) -> SiteConfig:
    """Append a circuit; :class:`ConflictError` when its id exists."""
    circuit_id = item.get("id")
    if any(c.id == circuit_id for c in cfg.circuits):
        raise ConflictError(f"circuit {circuit_id!r} exists")
    new = {k: v for k, v in item.items() if v is not None}
    if isinstance(new.get("ct"), Mapping):
        new["ct"] = _ct(new["ct"])
    return _with_circuit(cfg, None, new)


def remove_circuit(cfg: SiteConfig, circuit_id: str) -> SiteConfig:
    """Remove a circuit (and the simulated load of it, in a demo site)."""
    i = index_of(cfg.circuits, circuit_id, "circuit")
    new = cfg.model_copy(deep=True)
    del new.circuits[i]
    if new.simulation is not None:
        new.simulation.loads.pop(circuit_id, None)
    return new


# -- devices ------------------------------------------------------------------------------------------
def _known_profile(profile: Any, profiles: Collection[str]) -> None:
    """:class:`InvalidEdit` at ``profile`` unless it is one of ``profiles`` (empty: not checked)."""
    if profiles and profile not in profiles:
        known = ", ".join(sorted(profiles))
        raise InvalidEdit([_issue(("profile",), f"unknown profile {profile!r}; known: {known}")])


def patch_device(
    cfg: SiteConfig, device_id: str, changes: Mapping[str, Any], *, profiles: Collection[str] = ()
) -> SiteConfig:
    """Change fields of a device; a new ``profile`` must be one of ``profiles`` (when given)."""
    i = index_of(cfg.devices, device_id, "device")
    if changes.get("profile") is not None:
        _known_profile(changes["profile"], profiles)
    return _with_device(cfg, i, deep_merge(cfg.devices[i].model_dump(mode="json"), changes))


def add_device(cfg: SiteConfig, item: Mapping[str, Any], *, profiles: Collection[str] = ()) -> SiteConfig:
    """Append a device; :class:`ConflictError` when its id exists."""
    device_id = item.get("id")
    if any(d.id == device_id for d in cfg.devices):
        raise ConflictError(f"device {device_id!r} exists")
    _known_profile(item.get("profile"), profiles)
    return _with_device(cfg, None, {k: v for k, v in item.items() if v is not None})


def remove_device(cfg: SiteConfig, device_id: str) -> SiteConfig:
    """Remove a device; :class:`ConflictError` naming the circuits that still measure with it."""
    i = index_of(cfg.devices, device_id, "device")
    users = [c.id for c in cfg.circuits if device_id in (c.device, c.voltage_reference)]
    if users:
        raise ConflictError(f"circuits {', '.join(users)} use device {device_id!r}; change them first")
    new = cfg.model_copy(deep=True)
    del new.devices[i]
    return new


# -- site options and tariffs -------------------------------------------------------------------------
def patch_site(cfg: SiteConfig, changes: Mapping[str, Any], *, now: float | None = None) -> SiteConfig:
    """Change the site's interface options.

    ``name``, ``timezone``, ``language``, ``currency`` and ``co2_factor`` [kg/kWh] of the ``site:``
    section (``None`` leaves one as it is), ``title`` of the ``web:`` section (empty or ``None`` clears
    it: the header shows the site name) and ``public_live`` (``None`` leaves it).

    A new ``co2_factor`` that is the one in force (no ``energy.co2.factor`` overrides it) is
    effective-dated: the factor until ``now`` [s, UTC; default: the clock] moves into
    ``energy.co2.history``, so the CO2 of energy used before keeps the factor of its time.
    """
    unknown = set(changes) - {*SITE_OPTIONS, "title", "public_live"}
    if unknown:
        raise InvalidEdit([_issue((k,), "not a site option") for k in sorted(unknown)])
    site = cfg.site.model_dump()
    site.update({k: changes[k] for k in SITE_OPTIONS if changes.get(k) is not None})
    new = cfg.model_copy(deep=True)
    try:
        new.site = SiteInfo.model_validate(site)
    except ValidationError as exc:
        raise _invalid(exc) from None
    if "title" in changes:
        new.web.title = changes["title"] or None
    if changes.get("public_live") is not None:
        new.web.public_live = bool(changes["public_live"])
    co2 = cfg.energy.co2 if cfg.energy is not None else None
    if new.site.co2_factor != cfg.site.co2_factor and (co2 is None or co2.factor is None):
        when = time.time() if now is None else now
        new.energy = _dated_co2(new, cfg.site.co2_factor, when)
    return new


def _dated_co2(cfg: SiteConfig, old_factor: float, now: float) -> EnergyConfig:
    """The energy section of ``cfg`` with ``old_factor`` [kg/kWh] kept in ``energy.co2.history`` until
    ``now`` [s, UTC] (a second change within the same second corrects the first)."""
    energy = cfg.energy.model_copy(deep=True) if cfg.energy is not None else EnergyConfig()
    settings = energy.co2
    stamp = datetime.fromtimestamp(int(now), ZoneInfo(cfg.site.timezone)).isoformat()
    history = list(settings.history)
    if stamp != settings.factor_from:
        history.append(Co2Period(start=settings.factor_from, factor=old_factor))
    try:
        energy.co2 = Co2Settings.model_validate(
            {
                **settings.model_dump(exclude={"history", "factor_from"}),
                "history": history,
                "factor_from": stamp,
            }
        )
    except ValidationError as exc:
        raise _invalid(exc) from None
    return energy


def replace_tariffs(cfg: SiteConfig, tariffs: Mapping[str, Any], *, now: float) -> SiteConfig:
    """A copy of ``cfg`` whose ``energy.tariffs`` are ``tariffs`` from ``tariffs["effective_from"]`` on
    (default: ``now`` [s, UTC], written in the site's time zone); an energy section is added when absent.

    Tariffs are effective-dated, so history keeps what applied when the energy was used: the tariff in
    force until then moves into ``energy.tariff_history`` with its start, and reports price earlier
    energy with it. An ``effective_from`` equal to the current tariff's corrects the current tariff in
    place (no history entry); an earlier one is refused — earlier periods are edited in the site file.

    ``tariffs`` is the whole new ``energy.tariffs`` section as data; the schema of the energy section
    validates it, and what it refuses is an :class:`InvalidEdit` located inside the tariffs
    (``("rates", 0, "price")``).
    """
    energy = cfg.energy.model_dump() if cfg.energy is not None else {}
    body = dict(tariffs)
    if body.get("effective_from") is None:
        body["effective_from"] = datetime.fromtimestamp(int(now), ZoneInfo(cfg.site.timezone)).isoformat()
    previous = cfg.energy.tariffs if cfg.energy is not None else None
    energy["tariffs"] = body
    try:
        validated = EnergyConfig.model_validate(energy)
    except ValidationError as exc:
        raise InvalidEdit(
            [
                _issue(_inside_tariffs(tuple(e["loc"])), e["msg"].removeprefix("Value error, "))
                for e in exc.errors(include_url=False)
            ]
        ) from None
    start = validated.tariffs.effective_from
    if previous is not None and start != previous.effective_from and _priced(previous):
        if previous.effective_from is not None and effective_time(start or "", cfg.site.timezone) < (
            effective_time(previous.effective_from, cfg.site.timezone)
        ):
            raise InvalidEdit(
                [
                    _issue(
                        ("effective_from",),
                        f"{start} is before the current tariff's start {previous.effective_from}; "
                        "earlier tariff periods are edited in the site file (energy.tariff_history)",
                    )
                ]
            )
        past = TariffPeriod(
            start=previous.effective_from, tariffs=previous.model_copy(update={"effective_from": None})
        )
        validated.tariff_history = [*validated.tariff_history, past]
    try:
        tariff_periods(validated.tariff_history, validated.tariffs, cfg.site.timezone)
    except HistoryError as exc:
        raise InvalidEdit([_issue(_inside_tariffs(exc.loc), str(exc))]) from None
    new = cfg.model_copy(deep=True)
    new.energy = validated
    return new


def _priced(tariffs: TariffSettings) -> bool:
    """True unless ``tariffs`` are the defaults (no rates, no charges): nothing to keep in the history."""
    blank = TariffSettings(effective_from=tariffs.effective_from)
    return tariffs != blank


def _inside_tariffs(loc: Loc) -> Loc:
    return loc[1:] if loc[:1] == ("tariffs",) else loc
