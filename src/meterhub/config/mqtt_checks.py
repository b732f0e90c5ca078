"""Cross-checks of MQTT ingest devices against the rest of the site (see :mod:`meterhub.config.mqtt`)."""

from __future__ import annotations

from collections.abc import Iterable

from meterhub.config.mqtt import MqttFormat
from meterhub.config.reader import Loc
from meterhub.config.schema import BusKind, SiteConfig

__all__ = ["mqtt_reference_issues"]


def mqtt_reference_issues(cfg: SiteConfig) -> Iterable[tuple[Loc, str]]:
    """Cross-checks of MQTT ingest: devices on an mqtt bus have an ``mqtt:`` block (and only they), a
    mapping's circuits are circuits of its device, rtdata circuits have distinct channels (dids)."""
    kinds = {b.id: b.kind for b in cfg.buses}
    for i, d in enumerate(cfg.devices):
        kind = kinds.get(d.bus)
        if kind is None:
            continue  # reported by the reference check
        if kind is BusKind.MQTT and d.mqtt is None:
            yield ("devices", i), f"device {d.id!r} on mqtt bus {d.bus!r} needs 'mqtt: {{topic, format}}'"
            continue
        if kind is not BusKind.MQTT and d.mqtt is not None:
            yield (
                ("devices", i, "mqtt"),
                f"'mqtt' belongs to a device on a bus of kind mqtt, not {kind.value}",
            )
            continue
        if d.mqtt is None:
            continue
        mine = [c for c in cfg.circuits if c.device == d.id]
        ids = {c.id for c in mine}
        for j, m in enumerate(d.mqtt.mapping):
            loc: Loc = ("devices", i, "mqtt", "mapping", j)
            if m.circuit is None and len(mine) != 1:
                which = ", ".join(sorted(ids)) or "none"
                yield loc, f"say which 'circuit' (device {d.id!r} has {len(mine)} circuits: {which})"
            elif m.circuit is not None and m.circuit not in ids:
                which = ", ".join(sorted(ids)) or "none"
                yield (*loc, "circuit"), f"{m.circuit!r} is not a circuit of device {d.id!r} ({which})"
        if d.mqtt.format is MqttFormat.ENISCOPE_RTDATA:
            seen: dict[int, str] = {}
            for k, c in enumerate(cfg.circuits):
                if c.device != d.id:
                    continue
                did = c.channels[0]
                if did in seen:
                    yield (
                        ("circuits", k, "channels"),
                        f"rtdata did {did} of device {d.id!r} is already circuit {seen[did]!r}",
                    )
                seen.setdefault(did, c.id)
