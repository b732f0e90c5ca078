"""Real peers for the notification tests: an SMTP server (aiosmtpd on loopback: plain, STARTTLS or implicit TLS,
with AUTH), a self-signed certificate for it, an HTTP receiver that checks webhook signatures, and alarm
events to feed."""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import hashlib
import hmac
import ipaddress
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from meterhub.alarms.model import AlarmEvent, AlarmState, EventKind, Severity
from meterhub.model.quantities import Q

#: aiosmtpd's own warnings, raised in its server thread (where pytest's "error" filter would break the session):
#: the implicit-TLS server must not require STARTTLS before AUTH, and its AUTH path reads a deprecated field.
AIOSMTPD_WARNINGS = (
    "ignore:Requiring AUTH while not requiring TLS:UserWarning",
    "ignore:Session.login_data is deprecated:DeprecationWarning",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_cert(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost (cert, key PEM files); it is its own CA."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "meterhub test smtp")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "smtp-cert.pem", folder / "smtp-key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_file, key_file


class Mailbox:
    """What the SMTP server accepted: (envelope recipients, parsed message) in order."""

    def __init__(self) -> None:
        self.mails: list[tuple[list[str], EmailMessage]] = []
        self.logins: list[str] = []
        self.refuse: set[str] = set()  # recipients answered 550 on RCPT
        self.lock = threading.Lock()

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        if address in self.refuse:
            return "550 5.1.1 no such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        with self.lock:
            self.mails.append((list(envelope.rcpt_tos), msg))
        return "250 OK: queued"

    def wait(self, n: int, timeout: float = 10.0) -> list[tuple[list[str], EmailMessage]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.mails) >= n:
                    return list(self.mails)
            time.sleep(0.01)
        with self.lock:
            return list(self.mails)


class SmtpServer:
    """aiosmtpd on 127.0.0.1:``port``; ``stop()``/``start()`` simulate an outage on the same port.

    security : "none", "starttls" (required before AUTH and MAIL) or "tls" (implicit TLS).
    users : accepted logins; when given, AUTH is required."""

    def __init__(
        self,
        folder: Path,
        *,
        port: int | None = None,
        security: str = "none",
        users: dict[str, str] | None = None,
        mailbox: Mailbox | None = None,
    ) -> None:
        self.port = port or free_port()
        self.security = security
        self.users = users
        self.mailbox = mailbox or Mailbox()
        self.cert_file: Path | None = None
        self._ctx: ssl.SSLContext | None = None
        if security != "none":
            self.cert_file, key_file = make_cert(folder)
            self._ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self._ctx.load_cert_chain(self.cert_file, key_file)
        self.controller: Controller | None = None

    def _auth(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        assert self.users is not None
        if isinstance(data, LoginPassword):
            user, password = data.login.decode(), data.password.decode()
            if self.users.get(user) == password:
                self.mailbox.logins.append(user)
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    def start(self) -> None:
        kwargs: dict[str, Any] = {"hostname": "127.0.0.1", "port": self.port, "ready_timeout": 10}
        if self.users is not None:
            kwargs.update(authenticator=self._auth, auth_required=True, auth_require_tls=True)
        if self.security == "starttls":
            kwargs.update(tls_context=self._ctx, require_starttls=True)
        elif self.security == "tls":
            # aiosmtpd 1.4 does not count implicit TLS as TLS for AUTH: it would not offer AUTH at all.
            kwargs.update(ssl_context=self._ctx, auth_require_tls=False)
        self.controller = Controller(self.mailbox, **kwargs)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


def event(
    seq: int,
    *,
    kind: EventKind = EventKind.RAISED,
    rule: str = "compressor-pf-low",
    target: str = "compressor",
    severity: Severity = Severity.HIGH,
    value: float | None = 0.62,
    ts: float = 1_765_000_000.0,
    state: AlarmState | None = None,
) -> AlarmEvent:
    """An alarm event as the engine emits it: PF of the air compressor below 0.8 on the total."""
    if state is None:
        state = {
            EventKind.RAISED: AlarmState.UNACK_ACTIVE,
            EventKind.REMINDER: AlarmState.UNACK_ACTIVE,
            EventKind.CLEARED: AlarmState.RTN_UNACK,
            EventKind.ACKNOWLEDGED: AlarmState.ACK_ACTIVE,
        }.get(kind, AlarmState.NORMAL)
    return AlarmEvent(
        seq=seq,
        alarm_id=f"{rule}/{target}/total",
        rule=rule,
        kind=kind,
        state=state,
        severity=severity,
        target=target,
        phase="total",
        quantity=Q.POWER_FACTOR,
        value=value,
        limit=0.8,
        unit=None,
        ts=ts,
        title="Power factor low on compressor",
        message=f"PF {value} below 0.8 on compressor",
    )


class HookReceiver:
    """An HTTP server on loopback that records POSTs and checks the HMAC signature with ``secret``.

    answers : status codes to give, in order (then 200)."""

    def __init__(self, secret: str | None, answers: list[int] | None = None) -> None:
        self.secret = secret
        self.answers = list(answers or [])
        self.received: list[dict[str, Any]] = []  # every POST: headers, body, signature_ok, status
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                ts = self.headers.get("X-Meterhub-Timestamp", "")
                sig = self.headers.get("X-Meterhub-Signature")
                ok: bool | None = None
                if outer.secret is not None:
                    expected = (
                        "sha256="
                        + hmac.new(
                            outer.secret.encode(), ts.encode() + b"." + body, hashlib.sha256
                        ).hexdigest()
                    )
                    ok = sig is not None and hmac.compare_digest(sig, expected)
                with outer.lock:
                    status = outer.answers.pop(0) if outer.answers else 200
                    if ok is False:
                        status = 401
                    outer.received.append(
                        {
                            "headers": dict(self.headers),
                            "body": json.loads(body),
                            "signature_ok": ok,
                            "status": status,
                        }
                    )
                self.send_response(status)
                answer = b'{"detail": "bad signature"}' if status == 401 else b"{}"
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/meterhub"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> HookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def delivered(self) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.received if 200 <= r["status"] < 300]


def wait_until(cond: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.01)
    return cond()


async def mails_after(
    mailbox: Mailbox, n: int, timeout: float = 10.0
) -> list[tuple[list[str], EmailMessage]]:
    """Wait (without blocking the event loop) until ``mailbox`` holds ``n`` mails; return them all."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with mailbox.lock:
            if len(mailbox.mails) >= n:
                return list(mailbox.mails)
        await asyncio.sleep(0.01)
    with mailbox.lock:
        return list(mailbox.mails)
