"""Issue 11's "done when", notification side, with the real alarm engine: an over-limit that holds for its
on-delay sends one email; while it stays, one reminder per reminder time; a return shorter than the
recovery time sends nothing; then one "cleared"; a restart in between sends no duplicate.

The engine's clock is a number the test moves (one reading per second, the timers run each second as the
alarm sink does); the notifier delivers to a real SMTP server (aiosmtpd on loopback)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from meterhub.alarms.engine import AlarmEngine
from meterhub.alarms.notify import Notifier
from meterhub.alarms.rules import expand_rules
from meterhub.alarms.state import AlarmStateStore
from meterhub.checks import parse_site
from meterhub.config.notify import NotificationsConfig
from meterhub.model.quantities import Q
from meterhub.model.readings import Quality, Reading
from meterhub.model.topology import Phase

from .notify_peers import SmtpServer, mails_after

T0 = 1_765_000_000.0  # 2025-12-06 05:46:40 UTC

SITE = """\
site: {name: Test plant, timezone: Europe/Berlin}
buses:
  - {id: b1, kind: modbus-tcp, port: 5020}
devices:
  - {id: d2, bus: b1, unit: 2, profile: eastron-sdm630}
circuits:
  - {id: pump, device: d2, channels: [1, 2, 3], wiring: 3P4W}
alarms:
  rules:
    - id: pump-high
      title: "Pump overload"
      target: pump
      quantity: active_power
      unit: kW
      condition: high
      high: 10
      on_delay: 5
      recovery: 60
      reminder: 600
      severity: high
"""


class Clock:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> float:
        return self.t


def step(eng: AlarmEngine, clock: Clock, watts: float, seconds: int) -> None:
    """One reading of the pump's total active power per second, timers run each second."""
    for _ in range(seconds):
        clock.t += 1
        eng.update([Reading(clock.t, "pump", Q.ACTIVE_POWER, Phase.TOTAL, watts, Quality.GOOD)])
        eng.tick()


def test_raise_reminder_recovery_clear_and_a_restart_mail_once_each(tmp_path: Path) -> None:
    cfg = parse_site(SITE, "site.yaml")
    server = SmtpServer(tmp_path)
    server.start()
    notify = NotificationsConfig.model_validate(
        {
            "group_window": 0,
            "email": {
                "host": "127.0.0.1",
                "port": server.port,
                "security": "none",
                "from": "meterhub <alarms@example.net>",
                "to": ["facility@example.net"],
            },
        }
    )
    clock = Clock()
    state = tmp_path / "alarms-state.sqlite"

    def gateway() -> tuple[AlarmEngine, Notifier]:
        n = Notifier(notify, data_dir=tmp_path, site=cfg.site.name, timezone=cfg.site.timezone)
        eng = AlarmEngine(expand_rules(cfg), store=AlarmStateStore(state), clock=clock, listeners=[n])
        return eng, n

    async def first_life() -> list[Any]:
        eng, n = gateway()
        await n.start()
        step(eng, clock, 8_000, 10)  # below 10 kW
        step(eng, clock, 12_000, 4)  # over, shorter than the 5 s on-delay
        step(eng, clock, 8_000, 5)
        step(eng, clock, 12_000, 6)  # over for the on-delay: raised
        step(eng, clock, 12_000, 600)  # still over after the reminder time: one reminder
        mails = await mails_after(server.mailbox, 2)
        await n.flush(5)
        await n.stop()
        eng.store.close()  # type: ignore[union-attr]
        return mails

    async def second_life() -> list[Any]:  # the gateway restarts while the alarm is active
        eng, n = gateway()
        await n.start()
        step(eng, clock, 12_000, 30)  # still over: nothing new
        step(eng, clock, 8_000, 59)  # back under for less than the 60 s recovery: nothing
        step(eng, clock, 12_000, 1)
        step(eng, clock, 8_000, 62)  # back under for the recovery time: cleared, once
        mails = await mails_after(server.mailbox, 3)
        await n.flush(5)
        await asyncio.sleep(0.3)
        await n.stop()
        eng.store.close()  # type: ignore[union-attr]
        return mails

    try:
        first = asyncio.run(first_life())
        assert [m[1]["X-Meterhub-Seq"] for m in first] == ["1", "2"]
        every = asyncio.run(second_life())
    finally:
        server.stop()
    subjects = [m[1]["Subject"] for m in every]
    assert subjects == [
        "[high] Test plant: Pump overload (raised)",
        "[high] Test plant: Pump overload (reminder)",
        "[high] Test plant: Pump overload (cleared)",
    ]
    assert [m[1]["X-Meterhub-Seq"] for m in every] == ["1", "2", "3"]
    raised = every[0][1].get_content().splitlines()
    assert "Alarm:     pump-high/pump" in raised
    assert "Value:     12 kW" in raised and "Limit:     10 kW" in raised
    # raised at T0 + 25 s (10 + 4 + 5 + the 6th second over): 05:47:05 UTC, 06:47:05 CET
    assert "Time:      2025-12-06 06:47:05 CET (Europe/Berlin)" in raised
    assert "Time UTC:  2025-12-06T05:47:05Z" in raised
    assert "State:     rtn-unack" in every[2][1].get_content().splitlines()
