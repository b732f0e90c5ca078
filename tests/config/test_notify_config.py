"""``alarms.notifications``: the model, and its errors as FILE:LINE through the site file's reader.

The section is not wired into ``alarms:`` yet (the integrator does that); these tests read a YAML snippet with
the site reader and report errors the way :func:`meterhub.config.loader.parse_config` does, so the lines are
the ones a user will see."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from meterhub.config.loader import _data_loc, _line_of, _message
from meterhub.config.notify import (
    DEFAULT_SUBJECT,
    NotificationsConfig,
    NotifyKind,
    SmtpSecurity,
    notification_reference_issues,
)
from meterhub.config.reader import read_yaml

GOOD = """\
alarms:
  notifications:
    kinds: [raised, reminder, cleared, acknowledged]
    group_window: 30
    rate_limit: 20
    quiet_hours: {start: "22:00", end: "06:30"}
    email:
      host: smtp.example.net
      security: starttls
      username: alarms@example.net
      password_env: METERHUB_SMTP_PASSWORD
      from: "meterhub <alarms@example.net>"
      to: [facility@example.net]
      routes:
        - rules: [compressor-pf-low]
          to: [maintenance@example.net]
          subject: "Compressor: {title}"
        - severities: [critical]
          to: [oncall@example.net]
    webhooks:
      - id: ops
        url: https://ops.example.net/hooks/meterhub
        secret_env: METERHUB_WEBHOOK_SECRET
        headers: {X-Team: facility}
"""


def load(text: str, filename: str = "site.yaml") -> NotificationsConfig:
    """Validate ``alarms.notifications`` of ``text``; raise ValueError with ``FILE:LINE: field: message`` lines."""
    data, lines = read_yaml(text)
    section: Any = data["alarms"]["notifications"]
    try:
        return NotificationsConfig.model_validate(section)
    except ValidationError as exc:
        out = []
        for err in exc.errors(include_url=False):
            loc = (
                "alarms",
                "notifications",
                *_data_loc(err["loc"], section, missing=err["type"] == "missing"),
            )
            field = ".".join(str(p) for p in loc)
            out.append(f"{filename}:{_line_of(lines, loc)}: {field}: {_message(err)}")
        raise ValueError("\n".join(out)) from None


def test_the_documented_example_is_accepted_with_its_defaults() -> None:
    cfg = load(GOOD)
    assert cfg.email is not None
    assert cfg.email.security is SmtpSecurity.STARTTLS and cfg.email.effective_port == 587
    assert cfg.email.subject == DEFAULT_SUBJECT
    assert cfg.kinds == [NotifyKind.RAISED, NotifyKind.REMINDER, NotifyKind.CLEARED, NotifyKind.ACKNOWLEDGED]
    assert cfg.quiet_hours is not None and [s.value for s in cfg.quiet_hours.except_] == ["critical"]
    assert cfg.email.recipients("compressor-pf-low", "high") == [
        "facility@example.net",
        "maintenance@example.net",
    ]
    assert cfg.email.recipients("grid-v-low", "critical") == ["facility@example.net", "oncall@example.net"]
    assert cfg.email.recipients("other", "low") == ["facility@example.net"]
    assert cfg.email.subject_for("compressor-pf-low", "high") == "Compressor: {title}"
    assert cfg.outbox.max_days == 30
    assert cfg.webhooks[0].timeout == 10


def test_ports_follow_security() -> None:
    for security, port in (("none", 25), ("starttls", 587), ("tls", 465)):
        cfg = NotificationsConfig.model_validate(
            {"email": {"host": "mx", "security": security, "from": "a@b.example", "to": ["c@d.example"]}}
        )
        assert cfg.email is not None and cfg.email.effective_port == port


@pytest.mark.parametrize(
    ("old", "new", "where", "says"),
    [
        (
            'subject: "Compressor: {title}"',
            'subject: "Compressor: {titel}"',
            "site.yaml:17: alarms.notifications.email.routes.0.subject",
            "placeholder {titel} is not known; use {alarm_id}",
        ),
        (
            'subject: "Compressor: {title}"',
            'subject: "{title.__class__}"',
            "site.yaml:17: alarms.notifications.email.routes.0.subject",
            "placeholder {title.__class__} is not known",
        ),
        (
            "to: [facility@example.net]",
            "to: [facility.example.net]",
            "site.yaml:13: alarms.notifications.email.to",
            "'facility.example.net' is not an email address",
        ),
        (
            "      username: alarms@example.net\n",
            "",
            "site.yaml:7: alarms.notifications.email",
            "a password needs a username",
        ),
        (
            "        - severities: [critical]\n",
            '        - subject: "{title}"\n',
            "site.yaml:18: alarms.notifications.email.routes.1",
            "a route needs 'rules' or 'severities'",
        ),
        (
            "security: starttls",
            "security: ssl",
            "site.yaml:9: alarms.notifications.email.security",
            "'none', 'starttls' or 'tls'",
        ),
        (
            'end: "06:30"',
            'end: "6:30 am"',
            "site.yaml:6: alarms.notifications.quiet_hours.end",
            "is not a time of day HH:MM",
        ),
        (
            "kinds: [raised, reminder, cleared, acknowledged]",
            "kinds: [raised, raised]",
            "site.yaml:3: alarms.notifications.kinds",
            "a kind is listed twice",
        ),
        (
            "kinds: [raised, reminder, cleared, acknowledged]",
            "kinds: [rised]",
            "site.yaml:3: alarms.notifications.kinds.0",
            "'raised', 'reminder', 'cleared'",
        ),
        (
            "headers: {X-Team: facility}",
            "headers: {X-Meterhub-Signature: forged}",
            "site.yaml:24: alarms.notifications.webhooks.0.headers",
            "set by the notifier and cannot be configured",
        ),
        (
            "url: https://ops.example.net/hooks/meterhub",
            "url: ftp://ops.example.net/",
            "site.yaml:22: alarms.notifications.webhooks.0.url",
            "use http://HOST[:PORT]/PATH or https://",
        ),
        (
            "rate_limit: 20",
            "rate_limit: 0",
            "site.yaml:5: alarms.notifications.rate_limit",
            "greater than or equal to 1",
        ),
        (
            "group_window: 30",
            "group_window: '30'",
            "site.yaml:4: alarms.notifications.group_window",
            "not text '30'",
        ),
    ],
)
def test_bad_settings_are_refused_with_file_line_and_field(old: str, new: str, where: str, says: str) -> None:
    assert old in GOOD
    with pytest.raises(ValueError) as err:
        load(GOOD.replace(old, new, 1))
    text = str(err.value)
    assert where in text and says in text, text


def test_a_section_without_channels_is_refused() -> None:
    with pytest.raises(ValueError, match="notifications need 'email' or 'webhooks'"):
        load("alarms:\n  notifications:\n    group_window: 10\n")


def test_password_by_env_and_file_is_refused() -> None:
    with pytest.raises(ValueError, match="password_env or password_file, not both"):
        load(GOOD.replace("      password_env:", "      password_file: /etc/x\n      password_env:"))


def test_duplicate_webhook_ids_are_refused() -> None:
    twice = GOOD + "      - {id: ops, url: 'http://127.0.0.1:9/x'}\n"
    with pytest.raises(ValueError, match="webhook id 'ops' is used twice"):
        load(twice)


def test_routes_name_known_rules() -> None:
    cfg = load(
        GOOD.replace("rules: [compressor-pf-low]", "rules: [compressor-pf-lo, 'system:device-offline']")
    )
    issues = list(notification_reference_issues(cfg, ["compressor-pf-low", "grid-v-high"]))
    assert issues == [
        (
            ("alarms", "notifications", "email", "routes", 0, "rules", 0),
            "unknown alarm rule 'compressor-pf-lo'; known: compressor-pf-low, grid-v-high",
        )
    ]


def test_secrets_are_only_named_never_held() -> None:
    cfg = load(GOOD)
    dumped = repr(cfg.model_dump())
    assert "METERHUB_SMTP_PASSWORD" in dumped and "password'" not in dumped.replace("password_", "")
