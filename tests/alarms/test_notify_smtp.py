"""Email notifications against a real SMTP server (aiosmtpd on loopback): the mail's fields, STARTTLS, implicit
TLS and AUTH, grouping, rate limit, quiet hours, routes, a wrong password, an outage and a restart."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from meterhub.alarms.model import EventKind, Severity
from meterhub.alarms.notify import STOP_GRACE, Notifier
from meterhub.alarms.smtp import render_mail
from meterhub.config.notify import NotificationsConfig
from meterhub.model.health import HealthState

from .notify_peers import AIOSMTPD_WARNINGS, SmtpServer, event, mails_after

pytestmark = [pytest.mark.filterwarnings(w) for w in AIOSMTPD_WARNINGS]

SITE = "Demo factory"
FROM = "meterhub <alarms@example.net>"
PASSWORD_ENV = "MH_TEST_SMTP_PASSWORD"
#: Length of the simulated SMTP outage [s].
OUTAGE = float(os.environ.get("MH_SMTP_OUTAGE_S", "5"))
# 2025-12-06 06:13:20 UTC = 07:13:20 CET in Europe/Berlin
TS = 1_765_001_600.0


def config(server: SmtpServer, **over: Any) -> NotificationsConfig:
    email: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": server.port,
        "security": server.security,
        "from": FROM,
        "to": ["facility@example.net"],
    }
    if server.cert_file is not None:
        email["ca_file"] = str(server.cert_file)
    if server.users is not None:
        email.update(username="alarms", password_env=PASSWORD_ENV)
    email.update(over.pop("email", {}))
    doc: dict[str, Any] = {"group_window": 0, "email": email}
    doc.update(over)
    return NotificationsConfig.model_validate(doc)


def notifier(cfg: NotificationsConfig, data: Path, **kw: Any) -> Notifier:
    kw.setdefault("environ", {PASSWORD_ENV: "s3cret"})
    kw.setdefault("backoff", (0.1, 0.5))
    return Notifier(cfg, data_dir=data, site=SITE, timezone="Europe/Berlin", **kw)


@pytest.fixture
def server(tmp_path: Path) -> Any:
    srv = SmtpServer(tmp_path)
    srv.start()
    yield srv
    srv.stop()


def test_one_mail_per_event_with_the_documented_fields(tmp_path: Path, server: SmtpServer) -> None:
    cfg = config(server)

    async def go() -> Any:
        n = notifier(cfg, tmp_path, base_url="https://meter.example.net/")
        await n.start()
        n.on_event(event(41, ts=TS))
        n.on_event(event(42, kind=EventKind.CLEARED, value=0.91, ts=TS + 600))
        mails = await mails_after(server.mailbox, 2)
        await n.flush(5)
        health = n.health()
        await n.stop()
        return mails, health

    mails, health = asyncio.run(go())
    assert len(mails) == 2
    rcpts, msg = mails[0]
    assert rcpts == ["facility@example.net"]
    assert msg["Subject"] == "[high] Demo factory: Power factor low on compressor (raised)"
    assert msg["From"] == FROM
    assert msg["To"] == "facility@example.net"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["Message-ID"].startswith("<meterhub.41-41.1.") and msg["Message-ID"].endswith("@example.net>")
    body = msg.get_content()
    for line in (
        "Alarm:     compressor-pf-low/compressor/total",
        "Rule:      compressor-pf-low",
        "Title:     Power factor low on compressor",
        "Message:   PF 0.62 below 0.8 on compressor",
        "Event:     raised (seq 41)",
        "State:     unack-active",
        "Severity:  high",
        "Target:    compressor",
        "Phase:     total",
        "Quantity:  power_factor",
        "Value:     0.62",
        "Limit:     0.8",
        "Time:      2025-12-06 07:13:20 CET (Europe/Berlin)",
        "Time UTC:  2025-12-06T06:13:20Z",
        "Site:      Demo factory",
        "Alarms:    https://meter.example.net/alarms",
    ):
        assert line in body.splitlines(), line
    cleared = mails[1][1]
    assert cleared["Subject"] == "[high] Demo factory: Power factor low on compressor (cleared)"
    assert "Value:     0.91" in cleared.get_content()
    assert "Time:      2025-12-06 07:23:20 CET (Europe/Berlin)" in cleared.get_content()
    assert health.state is HealthState.OK
    assert health.counters["mails"] == 2 and health.counters["backlog"] == 0


def test_kinds_not_listed_send_nothing(tmp_path: Path, server: SmtpServer) -> None:
    cfg = config(server)  # default kinds: raised, reminder, cleared

    async def go() -> Any:
        n = notifier(cfg, tmp_path)
        await n.start()
        n.on_event(event(1, kind=EventKind.ACKNOWLEDGED))
        n.on_event(event(2, kind=EventKind.REMINDER))
        await mails_after(server.mailbox, 1)
        await asyncio.sleep(0.3)
        await n.stop()
        return server.mailbox.mails

    mails = asyncio.run(go())
    assert [m[1]["X-Meterhub-Seq"] for m in mails] == ["2"]
    assert mails[0][1]["Subject"].endswith("(reminder)")


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_tls_and_login(tmp_path: Path, security: str) -> None:
    srv = SmtpServer(tmp_path, security=security, users={"alarms": "s3cret"})
    srv.start()
    try:
        cfg = config(srv)

        async def go() -> Any:
            n = notifier(cfg, tmp_path)
            await n.start()
            n.on_event(event(7))
            mails = await mails_after(srv.mailbox, 1)
            await n.stop()
            return mails

        mails = asyncio.run(go())
    finally:
        srv.stop()
    assert len(mails) == 1
    assert srv.mailbox.logins == ["alarms"]
    assert "Event:     raised (seq 7)" in mails[0][1].get_content()


def test_wrong_password_is_a_clear_status_and_the_mail_is_kept(tmp_path: Path) -> None:
    srv = SmtpServer(tmp_path, security="starttls", users={"alarms": "s3cret"})
    srv.start()
    try:
        cfg = config(srv)

        async def first() -> Any:
            n = notifier(cfg, tmp_path, environ={PASSWORD_ENV: "wrong"})
            await n.start()
            n.on_event(event(9))
            for _ in range(500):
                if n.health().state is HealthState.DOWN:
                    break
                await asyncio.sleep(0.01)
            health = n.health()
            await n.stop()
            return health

        health = asyncio.run(first())
        assert health.state is HealthState.DOWN
        assert f"127.0.0.1:{srv.port} refused the login of alarms: 535" in health.message
        assert "1 event(s) kept" in health.message
        assert "wrong" not in health.message and "s3cret" not in health.message
        assert srv.mailbox.mails == []

        async def fixed() -> Any:  # the password is corrected and the gateway restarted
            n = notifier(cfg, tmp_path)
            await n.start()
            mails = await mails_after(srv.mailbox, 1)
            await n.flush(5)
            await n.stop()
            return mails

        mails = asyncio.run(fixed())
    finally:
        srv.stop()
    assert [m[1]["X-Meterhub-Seq"] for m in mails] == ["9"]


def test_missing_password_variable_is_down_naming_it(tmp_path: Path) -> None:
    srv = SmtpServer(tmp_path, security="starttls", users={"alarms": "s3cret"})
    cfg = config(srv)

    async def go() -> Any:
        n = notifier(cfg, tmp_path, environ={})
        await n.start()
        n.on_event(event(1))
        health = n.health()
        await n.stop()
        return health

    health = asyncio.run(go())
    assert health.state is HealthState.DOWN
    assert f"environment variable {PASSWORD_ENV} (password_env) is not set" in health.message
    assert health.counters["backlog"] == 1


def test_events_within_the_group_window_go_in_one_mail(tmp_path: Path, server: SmtpServer) -> None:
    cfg = config(server, group_window=0.5)

    async def go() -> Any:
        n = notifier(cfg, tmp_path)
        await n.start()
        t0 = time.monotonic()
        for seq in (1, 2, 3):
            n.on_event(event(seq, target=f"m{seq}"))
        await mails_after(server.mailbox, 1)
        took = time.monotonic() - t0
        await asyncio.sleep(0.6)
        await n.stop()
        return server.mailbox.mails, took

    mails, took = asyncio.run(go())
    assert len(mails) == 1
    msg = mails[0][1]
    assert took >= 0.45  # waited for the window
    assert msg["Subject"] == "[high] Demo factory: 3 alarm notifications"
    assert msg["X-Meterhub-Seq"] == "1,2,3"
    body = msg.get_content()
    assert [ln for ln in body.splitlines() if ln.startswith("Target:")] == [
        "Target:    m1",
        "Target:    m2",
        "Target:    m3",
    ]


def test_rate_limit_then_one_summary(tmp_path: Path, server: SmtpServer) -> None:
    cfg = config(server, rate_limit=2)
    offset = [0.0]

    def clock() -> float:
        return time.time() + offset[0]

    async def go() -> Any:
        n = notifier(cfg, tmp_path, clock=clock)
        await n.start()
        for seq in range(1, 6):
            n.on_event(event(seq))
        first = await mails_after(server.mailbox, 2)
        await asyncio.sleep(0.5)
        held = len(server.mailbox.mails), n.backlog()
        offset[0] = 3601.0  # an hour later
        n.email.wake()  # type: ignore[union-attr]
        after = await mails_after(server.mailbox, 3)
        await n.stop()
        return first, held, after

    first, held, after = asyncio.run(go())
    assert [m[1]["X-Meterhub-Seq"] for m in first[:2]] == ["1", "2"]
    assert held == (2, 3)
    assert len(after) == 3
    summary = after[2][1]
    assert summary["Subject"] == (
        "[high] Demo factory: 3 alarm notifications (summary: rate limit of 2 mails per hour reached)"
    )
    assert summary["X-Meterhub-Seq"] == "3,4,5"


def test_routes_per_rule_and_severity(tmp_path: Path, server: SmtpServer) -> None:
    cfg = config(
        server,
        email={
            "routes": [
                {
                    "rules": ["compressor-pf-low"],
                    "to": ["maintenance@example.net"],
                    "subject": "Compressor: {title}",
                },
                {"severities": ["critical"], "to": ["oncall@example.net"]},
            ]
        },
    )

    async def go() -> Any:
        n = notifier(cfg, tmp_path)
        await n.start()
        n.on_event(event(1))  # compressor, high
        n.on_event(event(2, rule="grid-voltage-low", target="grid", severity=Severity.CRITICAL))
        mails = await mails_after(server.mailbox, 4)
        await n.stop()
        return mails

    mails = asyncio.run(go())
    got = sorted((m[0][0], m[1]["X-Meterhub-Seq"], m[1]["Subject"]) for m in mails)
    assert got == [
        ("facility@example.net", "1", "Compressor: Power factor low on compressor"),
        ("facility@example.net", "2", "[critical] Demo factory: Power factor low on compressor (raised)"),
        ("maintenance@example.net", "1", "Compressor: Power factor low on compressor"),
        ("oncall@example.net", "2", "[critical] Demo factory: Power factor low on compressor (raised)"),
    ]


def test_quiet_hours_hold_all_but_critical(tmp_path: Path, server: SmtpServer) -> None:
    # quiet 22:00–06:30 Europe/Berlin; the clock starts at 23:00 CET (22:00 UTC)
    cfg = config(server, quiet_hours={"start": "22:00", "end": "06:30"})
    start = 1_765_058_400.0  # 2025-12-06 22:00:00 UTC = 23:00 CET
    offset = [0.0]

    def clock() -> float:
        return start + offset[0]

    async def go() -> Any:
        n = notifier(cfg, tmp_path, clock=clock)
        await n.start()
        n.on_event(event(1, severity=Severity.MEDIUM))
        n.on_event(event(2, severity=Severity.CRITICAL))
        n.on_event(event(3, severity=Severity.LOW))
        await mails_after(server.mailbox, 1)
        await asyncio.sleep(0.3)
        night = list(server.mailbox.mails)
        offset[0] = 7.5 * 3600 + 1  # 06:30:01 CET
        n.email.wake()  # type: ignore[union-attr]
        morning = await mails_after(server.mailbox, 2)
        await n.stop()
        return night, morning

    night, morning = asyncio.run(go())
    assert [m[1]["X-Meterhub-Seq"] for m in night] == ["2"]
    assert len(morning) == 2
    assert morning[1][1]["X-Meterhub-Seq"] == "1,3"  # released together: one mail


@pytest.mark.slow
@pytest.mark.timeout(300 + 2 * OUTAGE)
def test_smtp_outage_delays_but_loses_nothing(tmp_path: Path) -> None:
    """The server is away for MH_SMTP_OUTAGE_S seconds (default 5; the issue's 10 minutes:
    ``MH_SMTP_OUTAGE_S=600 pytest -s tests/alarms/test_notify_smtp.py -k outage``) while an event comes
    every second: afterwards every mail arrives once, in order. The backoff tops out at a tenth of the
    outage (60 s, the production value, for 10 minutes)."""
    outage = OUTAGE
    srv = SmtpServer(tmp_path)
    srv.start()
    cfg = config(srv, rate_limit=None)  # one mail per event, however many (the default limit is 20 per hour)

    async def go() -> Any:
        n = notifier(cfg, tmp_path, backoff=(0.2, min(60.0, max(0.5, outage / 10))))
        await n.start()
        n.on_event(event(1))
        await mails_after(srv.mailbox, 1)
        srv.stop()
        seq = 2
        t_end = time.monotonic() + outage
        states = set()
        while time.monotonic() < t_end:
            n.on_event(event(seq))
            seq += 1
            await asyncio.sleep(min(1.0, outage / 10))
            states.add(n.health().state)
        backlog = n.backlog()
        srv.start()
        t_back = time.monotonic()
        first = await mails_after(srv.mailbox, 2, timeout=30 + outage / 5)
        resumed = time.monotonic() - t_back
        await mails_after(srv.mailbox, seq - 1, timeout=30 + outage / 5)
        drained = time.monotonic() - t_back
        await asyncio.sleep(0.3)
        await n.stop()
        return (
            seq - 1,
            backlog,
            states,
            list(srv.mailbox.mails),
            resumed if len(first) >= 2 else -1.0,
            drained,
        )

    try:
        total, backlog, states, mails, resumed, drained = asyncio.run(go())
    finally:
        srv.stop()
    seqs = [int(m[1]["X-Meterhub-Seq"]) for m in mails]
    print(
        f"outage {outage:g} s: {total} events, {backlog} waited; after the server returned: first mail "
        f"{resumed:.2f} s (the backoff), all delivered {drained:.2f} s"
    )
    assert backlog == total - 1
    assert HealthState.DEGRADED in states
    assert seqs == list(range(1, total + 1))  # nothing lost, no duplicate, in order


def test_restart_with_a_backlog_sends_each_mail_once(tmp_path: Path) -> None:
    srv = SmtpServer(tmp_path)  # not started: the server is away while the first notifier runs
    cfg = config(srv)

    async def before() -> int:
        n = notifier(cfg, tmp_path)
        await n.start()
        for seq in (1, 2, 3):
            n.on_event(event(seq))
        await asyncio.sleep(0.3)
        backlog = n.backlog()
        await n.stop()
        return backlog

    assert asyncio.run(before()) == 3
    srv.start()
    try:

        async def after() -> Any:
            n = notifier(cfg, tmp_path)
            await n.start()
            await mails_after(srv.mailbox, 3)
            await n.flush(5)
            await asyncio.sleep(0.5)
            backlog = n.backlog()
            await n.stop()
            return backlog

        backlog = asyncio.run(after())
        # a third start finds nothing to send
        asyncio.run(after())
    finally:
        srv.stop()
    assert backlog == 0
    assert [m[1]["X-Meterhub-Seq"] for m in srv.mailbox.mails] == ["1", "2", "3"]


def test_message_id_is_the_same_for_a_resend(tmp_path: Path) -> None:
    srv = SmtpServer(tmp_path)
    cfg = config(srv)
    assert cfg.email is not None
    kw: dict[str, Any] = {
        "recipient": "a@example.net",
        "settings": cfg.email,
        "site": SITE,
        "tz": ZoneInfo("UTC"),
    }
    a = render_mail([event(5)], date=TS, **kw)
    b = render_mail([event(5)], date=TS + 60, **kw)
    c = render_mail([event(5)], date=TS, **{**kw, "recipient": "b@example.net"})
    assert a["Message-ID"] == b["Message-ID"] != c["Message-ID"]


def test_a_refused_recipient_waits_without_holding_up_the_others(tmp_path: Path, server: SmtpServer) -> None:
    server.mailbox.refuse.add("gone@example.net")
    cfg = config(server, email={"to": ["gone@example.net", "facility@example.net"]})

    async def go() -> Any:
        n = notifier(cfg, tmp_path)
        await n.start()
        n.on_event(event(1))
        n.on_event(event(2))
        mails = await mails_after(server.mailbox, 2)
        await asyncio.sleep(0.2)
        health = n.health()
        await n.stop()
        return mails, health

    mails, health = asyncio.run(go())
    assert [(m[0], m[1]["X-Meterhub-Seq"]) for m in mails] == [
        (["facility@example.net"], "1"),
        (["facility@example.net"], "2"),
    ]
    assert health.state is HealthState.DEGRADED
    assert "refused recipient gone@example.net: 550 5.1.1 no such user here" in health.message
    assert health.counters["backlog"] == 2  # kept for gone@example.net


def test_a_server_that_never_answers_does_not_hold_up_stop(tmp_path: Path) -> None:
    """A listener that accepts and stays silent (no SMTP greeting): the mail waits, stop() returns after the
    grace period instead of the 30 s SMTP timeout, and the event is still in the outbox."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        srv = SmtpServer(tmp_path, port=silent.getsockname()[1])  # configuration only, never started
        cfg = config(srv)

        async def go() -> Any:
            n = notifier(cfg, tmp_path)
            await n.start()
            n.on_event(event(1))
            await asyncio.sleep(0.3)
            t0 = time.monotonic()
            await n.stop()
            return time.monotonic() - t0

        took = asyncio.run(go())

    async def count() -> int:
        n = notifier(cfg, tmp_path)
        backlog = n.backlog()
        await n.stop()
        return backlog

    assert took < STOP_GRACE + 1.5
    assert asyncio.run(count()) == 1
