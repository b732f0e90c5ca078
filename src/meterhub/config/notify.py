"""The site file's ``alarms.notifications`` section: who hears about alarm events, how and how often (issue 11).

Example (docs/alarms-notifications.md describes every setting)::

    alarms:
      notifications:
        kinds: [raised, reminder, cleared]        # which alarm events notify (default)
        group_window: 30                          # events of one recipient within 30 s: one mail [s]
        rate_limit: 20                            # mails per hour per recipient; then one summary
        quiet_hours: {start: "22:00", end: "06:30", except: [critical]}   # site time zone
        email:
          host: smtp.example.net
          port: 587                               # default by security: 25, 587 (starttls), 465 (tls)
          security: starttls                      # none | starttls | tls
          username: alarms@example.net
          password_env: METERHUB_SMTP_PASSWORD    # or password_file: /etc/meterhub/smtp.secret
          from: "meterhub <alarms@example.net>"
          to: [facility@example.net]
          subject: "[{severity}] {site}: {title} ({kind})"
          routes:                                 # seed 001: per alarm "email title and recipients"
            - rules: [compressor-pf-low]
              to: [maintenance@example.net]
              subject: "Compressor: {title}"
            - severities: [critical]
              to: [oncall@example.net]
        webhooks:
          - id: ops
            url: https://ops.example.net/hooks/meterhub
            secret_env: METERHUB_WEBHOOK_SECRET   # HMAC-SHA256 signature (X-Meterhub-Signature)
            timeout: 10
            headers: {X-Team: facility}

Passwords and webhook secrets are never written in the site file: they are read from the environment or a
file when the notifier starts (:func:`meterhub.config.secrets.read_secret`), so neither the file nor an API
that shows the configuration can reveal them.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable
from datetime import time as dtime
from enum import StrEnum
from typing import Annotated

from pydantic import Field, field_validator, model_validator

from meterhub.config.publish import parse_upload_url
from meterhub.config.types import LAX, Identifier, StrictModel

__all__ = [
    "DEFAULT_KINDS",
    "DEFAULT_SUBJECT",
    "EmailRoute",
    "EmailSettings",
    "NotificationsConfig",
    "NotifyKind",
    "NotifySeverity",
    "QuietHours",
    "SUBJECT_FIELDS",
    "SmtpSecurity",
    "WebhookSettings",
    "notification_reference_issues",
]

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
# A deliberately plain address check (RFC 5321 local@domain, no display name, no blanks): what a person
# types into a site file; anything fancier is the SMTP server's to refuse.
_ADDRESS = re.compile(r"^[^@\s<>(),;:\"\[\]]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")
# "Name <local@domain>" or a bare address.
_FROM = re.compile(r"^(?:[^<>\r\n]{0,100}<(?P<a>[^<>\s]+)>|(?P<b>[^<>\s]+))$")
# An HTTP header name (RFC 9110 §5.1 token) and a value without line breaks.
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$")
_HEADER_VALUE = re.compile(r"^[^\r\n\x00]{0,1000}$")
# Headers the notifier sets itself: a configured value would break the body or the signature.
_RESERVED_HEADERS = frozenset(
    {"content-type", "content-length", "host", "user-agent", "transfer-encoding", "connection"}
)
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


class NotifyKind(StrEnum):
    """The alarm event kinds (``meterhub.alarms.model.EventKind``, same values) a notification can be for."""

    RAISED = "raised"
    REMINDER = "reminder"
    CLEARED = "cleared"
    ACKNOWLEDGED = "acknowledged"
    SHELVED = "shelved"
    UNSHELVED = "unshelved"
    SUPPRESSED = "suppressed"
    UNSUPPRESSED = "unsuppressed"
    OUT_OF_SERVICE = "out-of-service"
    IN_SERVICE = "in-service"


class NotifySeverity(StrEnum):
    """Alarm severities (``meterhub.alarms.model.Severity``, same values), highest first."""

    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"


class SmtpSecurity(StrEnum):
    """How the SMTP connection is protected."""

    NONE = "none"  # plain SMTP (a relay on the local network)
    STARTTLS = "starttls"  # RFC 3207: plain connect, then upgrade to TLS before AUTH (port 587)
    TLS = "tls"  # RFC 8314 implicit TLS from the first byte (port 465)


#: Default port per security (RFC 5321 §4.5.4 … / RFC 8314 §3.3).
DEFAULT_SMTP_PORT = {SmtpSecurity.NONE: 25, SmtpSecurity.STARTTLS: 587, SmtpSecurity.TLS: 465}
#: Event kinds that notify when ``kinds`` is not given: the changes a person must hear about.
DEFAULT_KINDS = (NotifyKind.RAISED, NotifyKind.REMINDER, NotifyKind.CLEARED)
#: The subject of a mail with one event.
DEFAULT_SUBJECT = "[{severity}] {site}: {title} ({kind})"
#: Placeholders a subject may use (docs/alarms-notifications.md, "Subject").
SUBJECT_FIELDS = frozenset(
    {
        "site",
        "title",
        "message",
        "kind",
        "state",
        "severity",
        "alarm_id",
        "rule",
        "target",
        "phase",
        "quantity",
        "value",
        "limit",
        "unit",
        "seq",
    }
)


def _check_subject(template: str) -> str:
    """A subject template uses only :data:`SUBJECT_FIELDS`, as plain ``{name}`` (no format spec, no
    attribute or index access: a template must not reach into objects)."""
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(
            f"subject {template[:80]!r}: {exc} (write a literal brace as {{{{ or }}}})"
        ) from None
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        if name not in SUBJECT_FIELDS or spec or conversion:
            allowed = ", ".join("{" + f + "}" for f in sorted(SUBJECT_FIELDS))
            raise ValueError(f"subject placeholder {{{name}}} is not known; use {allowed}")
    return template


def _check_address(value: str) -> str:
    if not _ADDRESS.match(value):
        raise ValueError(f"{value[:80]!r} is not an email address (local@domain)")
    return value


def _check_env(value: str | None) -> str | None:
    if value is not None and not _ENV_NAME.match(value):
        raise ValueError(f"{value[:40]!r} is not an environment variable name (letters, digits, '_')")
    return value


Address = Annotated[str, Field(min_length=3, max_length=320)]


class EmailRoute(StrictModel):
    """Extra recipients (and optionally another subject) for the events of some rules or severities.

    An event matches when its rule is in ``rules`` (if given) and its severity in ``severities`` (if given);
    a route must give at least one of them. The event goes to ``email.to`` and to every matching route's
    ``to``; the subject is the first matching route's ``subject``, else ``email.subject``."""

    rules: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        default_factory=list, max_length=1000
    )
    severities: list[Annotated[NotifySeverity, LAX]] = Field(default_factory=list, max_length=5)
    to: list[Address] = Field(min_length=1, max_length=100)
    subject: str | None = Field(default=None, min_length=1, max_length=300)

    @field_validator("to")
    @classmethod
    def _addresses(cls, v: list[str]) -> list[str]:
        return [_check_address(a) for a in v]

    @field_validator("subject")
    @classmethod
    def _subject(cls, v: str | None) -> str | None:
        return _check_subject(v) if v is not None else None

    @model_validator(mode="after")
    def _selects(self) -> EmailRoute:
        if not self.rules and not self.severities:
            raise ValueError("a route needs 'rules' or 'severities' (else put its addresses in email.to)")
        return self

    def matches(self, rule: str, severity: str) -> bool:
        """Does an event of ``rule`` with ``severity`` (its value, e.g. ``"high"``) go this route?"""
        return (not self.rules or rule in self.rules) and (
            not self.severities or severity in {s.value for s in self.severities}
        )


class EmailSettings(StrictModel):
    """``notifications.email``: the SMTP server, the sender, the recipients and the subject."""

    host: str = Field(min_length=1, max_length=253, description="SMTP server name or address")
    port: int | None = Field(default=None, ge=1, le=65535, description="default: 25, 587 or 465 by security")
    security: Annotated[SmtpSecurity, LAX] = SmtpSecurity.STARTTLS
    ca_file: str | None = Field(
        default=None,
        min_length=1,
        max_length=4096,
        description="CA of the server's certificate (PEM); default: system CAs",
    )
    username: str | None = Field(default=None, min_length=1, max_length=320)
    password_env: str | None = Field(default=None, description="environment variable holding the password")
    password_file: str | None = Field(
        default=None, min_length=1, max_length=4096, description="file holding the password"
    )
    from_: str = Field(alias="from", min_length=3, max_length=400, description="'Name <addr>' or an address")
    to: list[Address] = Field(default_factory=list, max_length=100)
    subject: str = Field(default=DEFAULT_SUBJECT, min_length=1, max_length=300)
    routes: list[EmailRoute] = Field(default_factory=list, max_length=1000)
    timeout: float = Field(default=30, gt=0, le=600, description="time allowed for one SMTP exchange [s]")
    kinds: list[Annotated[NotifyKind, LAX]] | None = Field(
        default=None, max_length=len(NotifyKind), description="default: notifications.kinds"
    )

    @field_validator("host")
    @classmethod
    def _host(cls, v: str) -> str:
        if any(c in v for c in " /:@") and not v.startswith("["):
            raise ValueError(f"{v[:80]!r} is a host name or address, not a URL (the port goes in 'port')")
        return v

    @field_validator("to")
    @classmethod
    def _addresses(cls, v: list[str]) -> list[str]:
        return [_check_address(a) for a in v]

    @field_validator("from_")
    @classmethod
    def _from(cls, v: str) -> str:
        m = _FROM.match(v.strip())
        if not m:
            raise ValueError(f"{v[:80]!r} is not a sender: write 'Name <local@domain>' or local@domain")
        _check_address(m.group("a") or m.group("b"))
        return v.strip()

    @field_validator("subject")
    @classmethod
    def _subject(cls, v: str) -> str:
        return _check_subject(v)

    @field_validator("password_env")
    @classmethod
    def _env(cls, v: str | None) -> str | None:
        return _check_env(v)

    @model_validator(mode="after")
    def _consistent(self) -> EmailSettings:
        if self.password_env is not None and self.password_file is not None:
            raise ValueError("give the password by password_env or password_file, not both")
        if (self.password_env or self.password_file) and self.username is None:
            raise ValueError("a password needs a username")
        if self.username is not None and not (self.password_env or self.password_file):
            raise ValueError("a username needs a password (password_env or password_file)")
        if self.ca_file is not None and self.security is SmtpSecurity.NONE:
            raise ValueError("'ca_file' needs security starttls or tls")
        if not self.to and not self.routes:
            raise ValueError("email needs recipients: 'to' or 'routes'")
        return self

    @property
    def effective_port(self) -> int:
        return self.port if self.port is not None else DEFAULT_SMTP_PORT[self.security]

    @property
    def endpoint(self) -> str:
        """``host:port`` as logs and the health name the server."""
        return f"{self.host}:{self.effective_port}"

    def recipients(self, rule: str, severity: str) -> list[str]:
        """Everybody an event of ``rule`` with ``severity`` goes to, in order, each address once."""
        out = dict.fromkeys(self.to)
        for route in self.routes:
            if route.matches(rule, severity):
                out.update(dict.fromkeys(route.to))
        return list(out)

    def subject_for(self, rule: str, severity: str) -> str:
        """The subject template for one event (the first matching route's, else ``subject``)."""
        for route in self.routes:
            if route.subject is not None and route.matches(rule, severity):
                return route.subject
        return self.subject


class WebhookSettings(StrictModel):
    """One ``notifications.webhooks`` entry: every notifying event is POSTed as JSON to ``url``."""

    id: Identifier
    url: str = Field(min_length=1, max_length=2000, description="http(s):// URL")
    secret_env: str | None = Field(default=None, description="environment variable holding the HMAC secret")
    secret_file: str | None = Field(
        default=None, min_length=1, max_length=4096, description="file holding the HMAC secret"
    )
    ca_file: str | None = Field(
        default=None, min_length=1, max_length=4096, description="CA for an https URL"
    )
    timeout: float = Field(default=10, gt=0, le=120, description="time allowed for one POST [s]")
    headers: dict[str, Annotated[str, Field(max_length=1000)]] = Field(default_factory=dict, max_length=50)
    kinds: list[Annotated[NotifyKind, LAX]] | None = Field(
        default=None, max_length=len(NotifyKind), description="default: notifications.kinds"
    )
    severities: list[Annotated[NotifySeverity, LAX]] = Field(
        default_factory=list, max_length=5, description="only these severities; empty: all"
    )

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        return parse_upload_url(v)

    @field_validator("secret_env")
    @classmethod
    def _env(cls, v: str | None) -> str | None:
        return _check_env(v)

    @field_validator("headers")
    @classmethod
    def _headers(cls, v: dict[str, str]) -> dict[str, str]:
        for name, value in v.items():
            if not _HEADER_NAME.match(name):
                raise ValueError(f"{name[:60]!r} is not an HTTP header name")
            if name.lower() in _RESERVED_HEADERS or name.lower().startswith("x-meterhub-"):
                raise ValueError(f"header {name!r} is set by the notifier and cannot be configured")
            if not _HEADER_VALUE.match(value):
                raise ValueError(f"header {name!r}: the value must be one line")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> WebhookSettings:
        if self.secret_env is not None and self.secret_file is not None:
            raise ValueError("give the secret by secret_env or secret_file, not both")
        if self.ca_file is not None and not self.url.startswith("https:"):
            raise ValueError("'ca_file' needs an https:// url")
        return self


class QuietHours(StrictModel):
    """A daily period (site time zone) in which mails wait; they go, grouped, when it ends. Severities in
    ``except`` go at once. ``start`` after ``end`` spans midnight (22:00–06:30)."""

    start: str = Field(description="HH:MM, site time")
    end: str = Field(description="HH:MM, site time")
    except_: list[Annotated[NotifySeverity, LAX]] = Field(
        alias="except", default_factory=lambda: [NotifySeverity.CRITICAL], max_length=5
    )

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        if not _HHMM.match(v):
            raise ValueError(f"{v[:20]!r} is not a time of day HH:MM (00:00 … 23:59)")
        return v

    @model_validator(mode="after")
    def _not_empty(self) -> QuietHours:
        if self.start == self.end:
            raise ValueError("start and end are equal: the quiet hours would be empty")
        return self

    @staticmethod
    def _parse(text: str) -> dtime:
        hh, mm = text.split(":")
        return dtime(int(hh), int(mm))

    @property
    def start_time(self) -> dtime:
        return self._parse(self.start)

    @property
    def end_time(self) -> dtime:
        return self._parse(self.end)


class NotifyOutbox(StrictModel):
    """Bound of the notification outboxes: events older than this are dropped (counted, WARNING)."""

    max_days: float = Field(default=30, gt=0, le=3650, description="[d]")


class NotificationsConfig(StrictModel):
    """``alarms.notifications``: email and webhooks for alarm events (see the module docstring)."""

    kinds: list[Annotated[NotifyKind, LAX]] = Field(
        default_factory=lambda: list(DEFAULT_KINDS), min_length=1, max_length=len(NotifyKind)
    )
    group_window: float = Field(
        default=30, ge=0, le=3600, description="events of one recipient within this window: one mail [s]"
    )
    rate_limit: int | None = Field(
        default=20,
        ge=1,
        le=3600,
        description="mails per hour per recipient at most; then one summary; null: no limit",
    )
    quiet_hours: QuietHours | None = None
    email: EmailSettings | None = None
    webhooks: list[WebhookSettings] = Field(default_factory=list, max_length=20)
    outbox: NotifyOutbox = Field(default_factory=NotifyOutbox)

    @field_validator("kinds")
    @classmethod
    def _unique(cls, v: list[NotifyKind]) -> list[NotifyKind]:
        if len(set(v)) != len(v):
            raise ValueError("a kind is listed twice")
        return v

    @model_validator(mode="after")
    def _channels(self) -> NotificationsConfig:
        if self.email is None and not self.webhooks:
            raise ValueError("notifications need 'email' or 'webhooks'")
        seen: set[str] = set()
        for hook in self.webhooks:
            if hook.id in seen:
                raise ValueError(f"webhook id {hook.id!r} is used twice")
            seen.add(hook.id)
        return self


def notification_reference_issues(
    cfg: NotificationsConfig, rules: Iterable[str], loc: tuple[str | int, ...] = ("alarms", "notifications")
) -> Iterable[tuple[tuple[str | int, ...], str]]:
    """Cross-check against the site's alarm rules: every rule a route names exists (``system:…`` rules are
    built in and always accepted). Yields ``(location, message)`` like every site check."""
    known = set(rules)
    if cfg.email is None:
        return
    for i, route in enumerate(cfg.email.routes):
        for j, rule in enumerate(route.rules):
            if rule not in known and not rule.startswith("system:"):
                names = ", ".join(sorted(known)[:20]) or "none"
                yield (*loc, "email", "routes", i, "rules", j), f"unknown alarm rule {rule!r}; known: {names}"
