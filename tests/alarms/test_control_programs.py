"""Time programs: weekly windows in the site's time zone, DST-correct, applied through the audited path."""

from __future__ import annotations

import asyncio
import socket
import time
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from meterhub.alarms.control import ControlService, program_state, window_instants
from meterhub.checks import parse_site
from meterhub.config.control import Action, Program
from meterhub.drivers.io.relay import RelayChange
from meterhub.drivers.modbus.transport import ModbusLink, TransportKind
from meterhub.model.audit import AuditEntry
from meterhub.profiles import get_profile
from meterhub.profiles.schema import Function
from meterhub.runtime import Gateway
from meterhub.sim.modbus_server import ProfileDevice, serve_devices
from meterhub.storage import open_storage

BERLIN = ZoneInfo("Europe/Berlin")


def program(*windows: tuple[list[str] | str, str, str]) -> Program:
    return Program.model_validate(
        {"id": "p", "point": "fan", "schedule": [{"days": d, "from": f, "to": t} for d, f, t in windows]}
    )


def utc(text: str) -> str:
    return datetime.fromtimestamp(float(text), UTC).strftime("%Y-%m-%d %H:%M")


def windows(p: Program, day: date) -> list[tuple[str, str]]:
    return [(utc(str(s)), utc(str(e))) for s, e in window_instants(p, day, BERLIN)]


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def test_office_hours_are_local_time_in_winter_and_in_summer():
    p = program(("weekdays", "07:00", "19:00"))
    assert windows(p, date(2026, 1, 12)) == [("2026-01-12 06:00", "2026-01-12 18:00")]  # CET, UTC+1
    assert windows(p, date(2026, 7, 13)) == [("2026-07-13 05:00", "2026-07-13 17:00")]  # CEST, UTC+2
    assert windows(p, date(2026, 7, 11)) == []  # a Saturday


def test_a_window_starting_in_the_skipped_spring_hour_starts_when_the_clock_jumps():
    # 2026-03-29 (a Sunday): 02:00 CET → 03:00 CEST at 01:00 UTC; 02:30 does not exist that night
    p = program(("sun", "02:30", "04:00"))
    assert windows(p, date(2026, 3, 29)) == [("2026-03-29 01:00", "2026-03-29 02:00")]
    assert not program_state(p, at("2026-03-29T00:59:59"), BERLIN)
    assert program_state(p, at("2026-03-29T01:00:00"), BERLIN)


def test_a_window_ending_in_the_repeated_autumn_hour_ends_at_its_first_occurrence():
    # 2026-10-25 (a Sunday): 03:00 CEST → 02:00 CET at 01:00 UTC; 02:00–03:00 happens twice
    p = program(("sun", "01:00", "02:30"))
    assert windows(p, date(2026, 10, 25)) == [("2026-10-24 23:00", "2026-10-25 00:30")]
    assert program_state(p, at("2026-10-25T00:29:00"), BERLIN)
    assert not program_state(p, at("2026-10-25T01:15:00"), BERLIN)  # 02:15 CET, the second time round


def test_a_window_over_midnight_and_one_to_the_end_of_the_day():
    p = program(("sat", "22:00", "02:00"), ("mon", "20:00", "24:00"))
    assert windows(p, date(2026, 1, 17)) == [("2026-01-17 21:00", "2026-01-18 01:00")]
    assert program_state(p, at("2026-01-18T00:30:00"), BERLIN)  # Sunday 01:30 local, from Saturday's window
    assert windows(p, date(2026, 1, 19)) == [("2026-01-19 19:00", "2026-01-19 23:00")]


SITE = """\
site: {name: programs, timezone: UTC}
buses: [{id: rs485, kind: modbus-tcp, port: PORT, timeout: 1}]
devices:
  - {id: vu, bus: rs485, unit: 1, profile: enertrek-v10, poll_interval: 5}
  - {id: dio1, bus: rs485, unit: 6, profile: enertrek-dio-4-2, poll_interval: 5}
io:
  points: [{id: fan, kind: relay, device: dio1, channel: 1}]
control:
  programs: [{id: fan-hours, point: fan, schedule: [{days: daily, from: "FROM", to: "TO"}]}]
"""


def test_a_running_gateway_switches_a_program_on_inside_its_window_and_off_after_it(tmp_path: Path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    now = datetime.now(UTC)
    start = now.replace(second=0, microsecond=0)
    h, m = start.hour, start.minute
    text = SITE.replace("PORT", str(port)).replace("FROM", f"{h:02d}:{m:02d}")
    text = text.replace("TO", f"{(h + 2) % 24:02d}:{m:02d}")  # two hours from this minute
    cfg = parse_site(text)
    shift = [0.0]

    class Audit(list[AuditEntry]):
        def record(self, entry: AuditEntry) -> None:
            self.append(entry)

    async def go() -> tuple[list[int], list[int], list[tuple[str, object, object]]]:
        sim = await serve_devices(
            {
                1: ProfileDevice("vu", get_profile("enertrek-v10"), None),
                6: ProfileDevice("dio1", get_profile("enertrek-dio-4-2"), None),
            },
            port=port,
        )
        gw = Gateway(
            cfg,
            data_dir=tmp_path,
            storage=open_storage(cfg.storage, tmp_path),
            clock=lambda: time.time() + shift[0],
        )
        audit = Audit()
        gw.control.auditor = audit
        probe = ModbusLink(TransportKind.TCP, port=port, timeout=3.0)
        await gw.start()
        try:
            for _ in range(100):  # the sink ticks once a second
                if audit:
                    break
                await asyncio.sleep(0.05)
            inside = await probe.read(Function.COIL, 6, 0, 1)
            shift[0] = 3 * 3600.0  # three hours later: outside the window
            for _ in range(100):
                if len(audit) > 1:
                    break
                await asyncio.sleep(0.05)
            outside = await probe.read(Function.COIL, 6, 0, 1)
            return inside, outside, [(e.actor, e.before, e.after) for e in audit]
        finally:
            await probe.close()
            await gw.stop()
            await sim.close()

    inside, outside, entries = asyncio.run(go())
    assert (inside, outside) == ([1], [0])
    assert entries == [("schedule:fan-hours", None, True), ("schedule:fan-hours", True, False)]


class _Relays:
    """Outputs that hold what they are told (a stand-in for the module, for what the path decides)."""

    async def switch(self, point: str, energised: bool) -> RelayChange:
        return RelayChange(0.0, point, energised)


def test_a_program_waits_without_logging_while_a_users_override_holds_its_output():
    text = SITE.replace("PORT", "1502").replace("FROM", "00:00").replace("TO", "24:00")
    cfg = parse_site(text)
    now = [at("2026-01-12T10:00:00")]
    audit: list[AuditEntry] = []

    class Audit:
        def record(self, entry: AuditEntry) -> None:
            audit.append(entry)

    svc = ControlService(cfg, lambda: _Relays(), Audit(), clock=lambda: now[0])  # type: ignore[arg-type, return-value]

    async def go() -> None:
        await svc.command("fan", Action.OFF, actor="alice", automatic=False)  # holds it for an hour
        for _ in range(5):
            svc.programs.tick(now[0])
            await svc.drain()
            now[0] += 60
        now[0] += 3600  # the override ran out: the program (on all day) takes over
        svc.programs.tick(now[0])
        await svc.drain()

    asyncio.run(go())
    assert [(e.actor, e.after, e.extra["result"]) for e in audit] == [
        ("alice", False, "done"),
        ("schedule:fan-hours", True, "done"),
    ]
