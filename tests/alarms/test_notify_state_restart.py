"""The email rate limit survives a restart (``DATA/notify-state.sqlite``): a notifier that sent its hour's
mails and is restarted does not send more until the hour is over, then one summary. Real SMTP server
(aiosmtpd on loopback)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from meterhub.alarms.notify import STATE_FILE, Notifier
from meterhub.config.notify import NotificationsConfig

from .notify_peers import AIOSMTPD_WARNINGS, SmtpServer, event, mails_after

pytestmark = [pytest.mark.filterwarnings(w) for w in AIOSMTPD_WARNINGS]


def test_a_restart_keeps_the_rate_limit_of_the_hour(tmp_path: Path) -> None:
    srv = SmtpServer(tmp_path)
    srv.start()
    cfg = NotificationsConfig.model_validate(
        {
            "group_window": 0,
            "rate_limit": 2,
            "email": {
                "host": "127.0.0.1",
                "port": srv.port,
                "security": srv.security,
                "from": "meterhub <alarms@example.net>",
                "to": ["facility@example.net"],
            },
        }
    )
    offset = [0.0]

    def clock() -> float:
        return time.time() + offset[0]

    def make() -> Notifier:
        return Notifier(cfg, data_dir=tmp_path, site="Plant", backoff=(0.1, 0.5), clock=clock)

    async def first_run() -> int:
        n = make()
        await n.start()
        n.on_event(event(1))
        n.on_event(event(2))
        await mails_after(srv.mailbox, 2)
        await n.stop()
        return len(srv.mailbox.mails)

    async def second_run() -> tuple[int, int, list[Any]]:
        n = make()  # a restart within the hour: two mails already went to this recipient
        await n.start()
        n.on_event(event(3))
        n.on_event(event(4))
        await asyncio.sleep(1.0)
        held = len(srv.mailbox.mails), n.backlog()
        offset[0] = 3601.0  # the hour is over
        assert n.email is not None
        n.email.wake()
        after = await mails_after(srv.mailbox, 3)
        await n.stop()
        return held[0], held[1], after

    try:
        assert asyncio.run(first_run()) == 2
        assert (tmp_path / STATE_FILE).exists()
        sent, backlog, after = asyncio.run(second_run())
    finally:
        srv.stop()
    assert (sent, backlog) == (2, 2)  # without the kept counts the restart would have sent both at once
    assert len(after) == 3
    summary = after[2][1]
    assert summary["Subject"].endswith("(summary: rate limit of 2 mails per hour reached)")
    assert summary["X-Meterhub-Seq"] == "3,4"
