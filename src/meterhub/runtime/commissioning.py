"""The commissioning assistant of a running gateway: live values in, verdicts per circuit out.

:class:`Commissioning` samples the gateway's live cache every :data:`SAMPLE_INTERVAL` seconds into a
:class:`meterhub.energy.commissioning.Observer` (the pure analysis) while it runs, starting when it is
first asked (``GET /api/v1/commissioning``, ``meterhub commission``), so a gateway that is never
commissioned pays nothing. A configuration change (a fix applied, a circuit edited) restarts the
evidence of the circuits it changed: their verdict is ``insufficient-load`` until the observation time
has passed again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from meterhub.config.schema import SiteConfig
from meterhub.energy.commissioning import CircuitReport, CircuitSetup, Observer, setup_of, site_sample
from meterhub.profiles import get_profile
from meterhub.profiles.schema import ProfileError
from meterhub.profiles.transformers import fixed_ratio_reason
from meterhub.runtime.gateway import Gateway

__all__ = ["SAMPLE_INTERVAL", "Commissioning", "setups_of"]

log = logging.getLogger("meterhub.commissioning")

SAMPLE_INTERVAL = 1.0  # [s] between snapshots of the live values


def setups_of(config: SiteConfig) -> list[CircuitSetup]:
    """The checks' view of every circuit; the ratio counts as fixable where meterhub applies it
    (a Modbus device reporting secondary values, the ADC board), not where the device does."""
    out = []
    devices = {d.id: d for d in config.devices}
    for c in config.circuits:
        fixable = True
        device = devices.get(c.device)
        if device is not None and device.profile:
            try:
                profile = get_profile(device.profile)
            except ProfileError:
                profile = None  # not a Modbus profile (the ADC board): the waveform source applies the CT
            if profile is not None:
                fixable = fixed_ratio_reason(profile, c, vt=False) is None
        out.append(setup_of(c, config, ratio_fixable=fixable))
    return out


class Commissioning:
    """The assistant of one gateway (see the module docstring)."""

    def __init__(self, gateway: Gateway, *, interval: float = SAMPLE_INTERVAL) -> None:
        self.gateway = gateway
        self.interval = interval
        cfg = gateway.config
        self.observer = Observer(
            setups_of(cfg),
            nominal_voltage=cfg.site.nominal_voltage,
            nominal_frequency=float(cfg.site.nominal_frequency),
        )
        self.started_at = gateway.clock()
        self._task: asyncio.Task[None] | None = None
        self._generation = 0  # configuration changes seen
        self._cached: tuple[tuple[int, int], list[CircuitReport]] | None = None
        gateway.config_listeners.append(self.reconfigure)

    def start(self) -> None:
        """Start sampling (idempotent)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="commissioning")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                self.sample()
            except Exception:  # a bad value must not end the checks; it is logged with its traceback
                log.exception("commissioning: a snapshot could not be analysed")
            await asyncio.sleep(self.interval)

    def sample(self) -> None:
        """Take one snapshot of the live values."""
        readings = self.gateway.live.readings()
        self.observer.add(site_sample(readings, list(self.observer.setups.values()), self.gateway.clock()))

    def reconfigure(self, config: SiteConfig) -> None:
        """Follow a changed configuration (a gateway config listener)."""
        self.observer.nominal_voltage = config.site.nominal_voltage
        self.observer.nominal_frequency = float(config.site.nominal_frequency)
        changed = self.observer.reconfigure(setups_of(config))
        self._generation += 1
        if changed:
            log.info("commissioning: checking %s anew after the configuration change", ", ".join(changed))

    def reports(self) -> list[CircuitReport]:
        """The verdicts, computed at most once per new snapshot (a report of 100 three-phase circuits
        takes ~50 ms, bench/commissioning.py: every browser polling the page must not cost that each time)."""
        key = (self.observer.samples, self._generation)
        if self._cached is None or self._cached[0] != key:
            self._cached = (key, self.observer.report())
        return self._cached[1]

    def report(self) -> dict[str, Any]:
        """``{"since", "interval", "min_observation", "circuits": [...]}`` (GET /api/v1/commissioning)."""
        cfg = self.gateway.config
        panels = {c.id: c.panel or _device_panel(cfg, c.device) for c in cfg.circuits}
        names = {c.id: c.name for c in cfg.circuits}
        circuits = []
        for r in self.reports():
            d = r.as_dict()
            d["name"] = names.get(r.id, "")
            d["panel"] = panels.get(r.id)
            circuits.append(d)
        return {
            "since": self.started_at,
            "snapshots": self.observer.samples,
            "min_observation": self.observer.min_observation,
            "min_samples": self.observer.min_samples,
            "circuits": circuits,
        }


def _device_panel(config: SiteConfig, device_id: str) -> str | None:
    device = next((d for d in config.devices if d.id == device_id), None)
    return device.panel if device is not None else None
