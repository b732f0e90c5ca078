"""The source for buses of kind ``io``: the local Linux 1-wire master and its DS18B20 probes.

A device on an ``io`` bus with profile ``linux-w1`` gets one :class:`~.onewire.OneWireSource` that
reads the ``temperature`` points of the ``io:`` section naming that device, every
``poll_interval`` [s] of the point (default: the device's). The sysfs root is ``io.w1_root``.

IO points on Modbus modules (DIO-4/2, AIO-2/2, pulse concentrator) are read by the Modbus source,
which applies their meaning through :mod:`meterhub.drivers.io.processor`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from meterhub.config.schema import BusKind
from meterhub.drivers.base import Source, SourceContext, register_source
from meterhub.drivers.io.config import TemperaturePoint, io_section
from meterhub.drivers.io.onewire import ONEWIRE_PROFILE, OneWireSource

__all__ = ["io_sources"]

log = logging.getLogger("meterhub.io")


def io_sources(ctx: SourceContext) -> Sequence[Source]:
    """One source per 1-wire master device on this ``io`` bus."""
    section = io_section(ctx.config)
    out: list[Source] = []
    for device in ctx.devices:
        if device.profile != ONEWIRE_PROFILE:
            log.error(
                "device %s on io bus %s has profile %r; the io bus serves only %r (1-wire probes)",
                device.id,
                ctx.bus.id,
                device.profile,
                ONEWIRE_PROFILE,
            )
            continue
        points = [p for p in section.on_device(device.id) if isinstance(p, TemperaturePoint)]
        if not points:
            log.warning("1-wire device %s has no temperature points in the io section", device.id)
            continue
        out.append(
            OneWireSource(
                device=device.id,
                points=points,
                root=section.w1_folder(ctx.data_dir),
                interval=device.poll_interval,
                status=ctx.status.get(device.id),
            )
        )
    return out


register_source(BusKind.IO, io_sources)
