"""Drive the outputs of a running gateway by point id: relays and analog outputs.

For alarm linkage and remote control (seed 000 §3.4.5: "Remote Logic Control", "Alarm Trigger: input
event triggered alarm output"), callers name a point of the ``io:`` section; :class:`OutputControl`
finds the module's profile, the writable register and the Modbus line that already polls that bus
(so a command waits its turn behind at most one request in flight), writes, reads back, and emits the
confirmed state as a reading::

    control = OutputControl.for_gateway(gateway)
    await control.switch("fan", True)          # latched relay → RelayChange, relay_output = 1
    await control.pulse("shunt-trip")          # pulse-mode relay: on, wait, off — both confirmed
    await control.set_analog("valve", 75.0)    # analog output in its engineering unit

Every failure is an :class:`~meterhub.drivers.io.errors.IOPointError` (or a subclass) naming the point.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from meterhub.config.schema import SiteConfig
from meterhub.drivers.io.config import AnalogOutPoint, RelayPoint, io_section
from meterhub.drivers.io.errors import IOPointError
from meterhub.drivers.io.processor import IODevice, output_target
from meterhub.drivers.io.relay import OutputPort, OutputTarget, RelayChange, RelayOutput
from meterhub.model.quantities import Q
from meterhub.model.readings import Reading
from meterhub.profiles import ProfileError, get_profile

__all__ = ["OutputControl"]

Emit = Callable[[Sequence[Reading]], None]
_Out = TypeVar("_Out", RelayPoint, AnalogOutPoint)


class OutputControl:
    """Outputs of a site, written through the ports of its running sources.

    Parameters
    ----------
    config : the site.
    ports : bus id → the port (a :class:`~meterhub.drivers.modbus.transport.ModbusLink`) of that bus.
    emit : where confirmed states go (the gateway's ``emit``); None: nowhere.
    """

    def __init__(self, config: SiteConfig, ports: dict[str, OutputPort], emit: Emit | None = None) -> None:
        self.config = config
        self.ports = ports
        self.emit = emit
        self.points = {p.id: p for p in io_section(config).points}

    @classmethod
    def for_gateway(cls, gateway: Any) -> OutputControl:
        """Use the Modbus lines of a running :class:`meterhub.runtime.Gateway` (its sources' ``link``)."""
        ports: dict[str, OutputPort] = {}
        for source in gateway.sources:
            link, ctx = getattr(source, "link", None), getattr(source, "ctx", None)
            if link is not None and ctx is not None:
                ports[ctx.bus.id] = link
        return cls(gateway.config, ports, gateway.emit)

    def outputs(self) -> list[str]:
        """Ids of the output points (relays and analog outputs)."""
        return [p.id for p in self.points.values() if isinstance(p, RelayPoint | AnalogOutPoint)]

    def _resolve(self, point_id: str, kind: type[_Out]) -> tuple[_Out, OutputPort, OutputTarget, Any]:
        p = self.points.get(point_id)
        if not isinstance(p, kind):
            known = ", ".join(self.outputs()) or "none configured"
            what = "no such point" if p is None else f"it is a {p.kind} point"
            raise IOPointError(f"cannot drive {point_id!r}: {what}; output points: {known}")
        device = self.config.device(p.device)
        port = self.ports.get(device.bus)
        if port is None:
            raise IOPointError(f"point {point_id}: bus {device.bus!r} of device {device.id} is not running")
        try:
            profile = get_profile(device.profile)
        except ProfileError as exc:
            raise IOPointError(f"point {point_id}: {exc}") from None
        unit = device.unit if device.unit is not None else profile.defaults.unit
        quantity = Q.RELAY_OUTPUT if isinstance(p, RelayPoint) else Q.ANALOG_OUTPUT
        try:
            target = output_target(profile, device.id, unit, quantity, p.channel)
        except KeyError as exc:
            raise IOPointError(f"point {point_id}: {exc.args[0]}") from None
        return p, port, target, profile

    def _publish(self, readings: list[Reading]) -> None:
        if self.emit is not None:
            self.emit(readings)

    async def switch(self, point_id: str, energised: bool) -> RelayChange:
        """Latch relay ``point_id`` on or off; confirmed by read-back, then emitted."""
        p, port, target, _ = self._resolve(point_id, RelayPoint)
        change = await RelayOutput(p, port, target).switch(energised)
        self._publish([change.reading()])
        return change

    async def pulse(self, point_id: str, duration: float | None = None) -> tuple[RelayChange, RelayChange]:
        """Energise relay ``point_id`` for ``duration`` [s] (default its ``pulse_duration``), then release."""
        p, port, target, _ = self._resolve(point_id, RelayPoint)
        on, off = await RelayOutput(p, port, target).pulse(duration)
        self._publish([on.reading(), off.reading()])
        return on, off

    async def set_analog(self, point_id: str, value: float) -> Reading:
        """Drive analog output ``point_id`` to ``value`` [its engineering unit]; confirmed, then emitted."""
        p, port, target, profile = self._resolve(point_id, AnalogOutPoint)
        factor = next(
            (
                pt.factor
                for pt in profile.points()
                if pt.quantity == Q.ANALOG_OUTPUT and pt.channel == p.channel
            ),
            None,
        )
        if factor is None:
            raise IOPointError(f"point {point_id}: profile {profile.id} has no analog_output register")
        reading = await IODevice(p.device, [p]).set_analog_output(point_id, value, port, target, factor)
        self._publish([reading])
        return reading
