"""Every error meterhub raises on purpose, in one hierarchy (like httpx's ``_exceptions.py``).

A caller catches :class:`MeterhubError` to handle anything meterhub reports, or one of the families
below to handle one kind. Each family carries the HTTP status a web route answers with and the exit
code a CLI command ends with, so both mappings live here and nowhere else:

======================  ==========  =====  ===============================================================
family                  HTTP        exit   raised for
======================  ==========  =====  ===============================================================
ConfigurationError      422         2      a site file, profile or setting that cannot be used
InputError              422         2      a bad file, row, record or request body given by a user
NotFoundError           404         2      a device, circuit, series or user that does not exist
ConflictError           409         2      a request that contradicts the current state
AuthenticationError     401         2      missing or wrong credentials
PermissionDeniedError   403         2      a signed-in user without the role for an action
DeviceError             502         1      a device or protocol peer that answered wrongly
DeviceTimeoutError      504         1      a device or peer that did not answer in time
StorageError            503         1      the database is unreachable, full or broken
NotImplementedYetError  501         2      a configured feature whose issue has not landed yet
======================  ==========  =====  ===============================================================

Modules keep their own subclasses (``ModbusTimeout(DeviceTimeoutError)``, ``FormulaError(ConfigurationError)``)
so messages stay specific; what a family means for HTTP and the CLI is decided once, here.
"""

from __future__ import annotations

__all__ = [
    "AuthenticationError",
    "ConfigurationError",
    "ConflictError",
    "DeviceError",
    "DeviceTimeoutError",
    "InputError",
    "MeterhubError",
    "NotFoundError",
    "NotImplementedYetError",
    "PermissionDeniedError",
    "StorageError",
    "exit_code_of",
    "http_status_of",
]


class MeterhubError(Exception):
    """Root of every error meterhub raises on purpose. ``str(err)`` is a message for a person."""

    http_status: int = 500
    exit_code: int = 1


class ConfigurationError(MeterhubError):
    """A site file, profile or setting that cannot be used."""

    http_status = 422
    exit_code = 2


class InputError(MeterhubError):
    """A bad file, row, record or request body given by a user."""

    http_status = 422
    exit_code = 2


class NotFoundError(MeterhubError):
    """Something named in a request does not exist."""

    http_status = 404
    exit_code = 2


class ConflictError(MeterhubError):
    """A request that contradicts the current state (e.g. a duplicate id)."""

    http_status = 409
    exit_code = 2


class AuthenticationError(MeterhubError):
    """Missing or wrong credentials."""

    http_status = 401
    exit_code = 2


class PermissionDeniedError(MeterhubError):
    """A signed-in user without the role an action needs."""

    http_status = 403
    exit_code = 2


class DeviceError(MeterhubError):
    """A device or protocol peer that answered wrongly (exception response, bad frame, bad CRC)."""

    http_status = 502
    exit_code = 1


class DeviceTimeoutError(DeviceError):
    """A device or protocol peer that did not answer in time."""

    http_status = 504


class StorageError(MeterhubError):
    """The database is unreachable, full or broken."""

    http_status = 503
    exit_code = 1


class NotImplementedYetError(ConfigurationError):
    """A configured feature (section, bus kind) whose implementation has not landed yet."""

    http_status = 501


def http_status_of(exc: BaseException) -> int:
    """The HTTP status a web route answers ``exc`` with (500 for anything not a :class:`MeterhubError`)."""
    return exc.http_status if isinstance(exc, MeterhubError) else 500


def exit_code_of(exc: BaseException) -> int:
    """The exit code a CLI command ends with after ``exc`` (1 for anything not a :class:`MeterhubError`)."""
    return exc.exit_code if isinstance(exc, MeterhubError) else 1
