"""``meterhub central provision SITE``: a gateway's own broker credentials and ACL.

Central manages two Mosquitto files (``broker_files`` in central.yaml; mosquitto.conf's ``password_file``
and ``acl_file`` point at them):

* the **password file**: one ``user:$7$…`` line per gateway (and for central's own user), in Mosquitto
  2's hash format — PBKDF2-HMAC-SHA512, 101 iterations, a 12-byte salt, ``$7$<iterations>$<salt
  base64>$<hash base64>`` (mosquitto_passwd(1), mosquitto 2.0 ``src/password_mosq.c``);
* the **ACL file** (mosquitto.conf(5), ``acl_file``): per gateway ``user <site>`` then ``topic write
  <root>/<site>/#`` — a gateway may publish only under its own site, and read nothing; central's user
  ``topic read <root>/#``.

Both are rewritten whole, atomically (temporary file + rename), under a lock file, so two provisions at
once cannot lose an entry. Mosquitto reads them again on SIGHUP.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import os
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from meterhub.central.config import CentralConfig
from meterhub.errors import ConfigurationError, ConflictError, InputError

__all__ = ["Provisioned", "mosquitto_hash", "provision_site", "publish_settings", "verify_mosquitto_hash"]

_SITE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
#: Mosquitto 2's PBKDF2 iterations for ``$7$`` hashes (mosquitto_passwd's default).
ITERATIONS = 101


def mosquitto_hash(password: str, *, salt: bytes | None = None, iterations: int = ITERATIONS) -> str:
    """The ``$7$`` password hash Mosquitto 2 reads from a password file."""
    salt = secrets.token_bytes(12) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_mosquitto_hash(password: str, hashed: str) -> bool:
    _, kind, it, salt, digest = hashed.split("$")
    if kind != "7":
        return False
    return (
        mosquitto_hash(password, salt=base64.b64decode(salt), iterations=int(it))
        == f"${kind}${it}${salt}${digest}"
    )


@dataclass(frozen=True)
class Provisioned:
    site: str
    username: str
    password: str


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(path.suffix + ".lock"), "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _write_atomic(path: Path, text: str, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _read_passwords(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    if not path.exists():
        return out
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        user, sep, hashed = line.partition(":")
        if not sep:
            raise ConfigurationError(f"{path}:{n}: not a Mosquitto password line (user:hash)")
        out[user] = hashed
    return out


def _acl(cfg: CentralConfig, users: dict[str, str]) -> str:
    root = cfg.topic_root
    lines = [
        "# Written by `meterhub central provision`; edits are overwritten.",
        "# Each gateway may publish only under its own site and read nothing (mosquitto.conf(5), acl_file).",
        "",
    ]
    central_user = cfg.username
    for user in sorted(users):
        if user == central_user:
            lines += [f"user {user}", f"topic read {root}/#", ""]
        else:
            lines += [f"user {user}", f"topic write {root}/{user}/#", ""]
    return "\n".join(lines)


def provision_site(
    cfg: CentralConfig, site: str, *, rotate: bool = False, password: str | None = None
) -> Provisioned:
    """Add (or with ``rotate`` renew) the broker user of ``site`` and its ACL entry; also central's own
    user when central.yaml names one with ``password_env`` set. Returns the gateway's credentials."""
    if cfg.broker_files is None:
        raise ConfigurationError(
            "central.yaml has no broker_files (password_file, acl_file): provision needs the Mosquitto files it manages"
        )
    if not _SITE.match(site):
        raise InputError(
            f"site {site!r}: a site id is [a-z0-9][a-z0-9_.-]{{0,63}} (it is the broker user name)"
        )
    if cfg.username is not None and site == cfg.username:
        raise InputError(f"site {site!r} is central's own broker user name")
    files = cfg.broker_files
    with _locked(files.password_file):
        users = _read_passwords(files.password_file)
        if site in users and not rotate:
            raise ConflictError(
                f"site {site!r} is already provisioned in {files.password_file}; --rotate gives it a new password"
            )
        secret = password or secrets.token_urlsafe(24)
        users[site] = mosquitto_hash(secret)
        if cfg.username and cfg.password_env and cfg.username not in users:
            central_pw = os.environ.get(cfg.password_env)
            if central_pw:
                users[cfg.username] = mosquitto_hash(central_pw)
        _write_atomic(files.password_file, "".join(f"{u}:{h}\n" for u, h in sorted(users.items())), 0o600)
        _write_atomic(files.acl_file, _acl(cfg, users), 0o644)
    return Provisioned(site, site, secret)


def publish_settings(cfg: CentralConfig, p: Provisioned, password_file: str) -> str:
    """The gateway's ``publish:`` entry (YAML) for its site file."""
    return (
        "publish:\n"
        "  - id: central\n"
        "    name: meterhub central\n"
        "    transport: mqtt\n"
        f"    broker: {cfg.mqtt}\n"
        f"    username: {p.username}\n"
        f"    password_file: {password_file}   # holds the password, nothing else\n"
        f"    client_id: meterhub-{p.site}-central\n"
        f"    site_id: {p.site}\n"
        f'    topic_prefix: "{cfg.topic_root}/{{site_id}}"\n'
        "    qos: 1\n"
        "    interval: 60\n"
        "    formats: [meterhub-json]\n"
    )
