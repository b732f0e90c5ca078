"""One mapping from meterhub's errors to HTTP answers, installed on the app by :func:`install`.

A route raises the domain error (:mod:`meterhub.errors`: ``NotFoundError``, ``ConflictError``,
``ConfigurationError`` …) and never builds the answer itself. The status is the error family's
``http_status``; the body has FastAPI's shape, so a client reads every error the same way:

* ``{"detail": "unknown circuit 'x'"}`` — a message for a person;
* ``{"detail": [{"loc": ["body", "ct", "ratio"], "msg": "…", "type": "value_error"}, …]}`` — an edit or
  site configuration refused field by field (``loc`` as in FastAPI's own 422 answers).

Server-side failures (5xx) are logged with the path; their message still names what failed.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from meterhub.config.edit import InvalidEdit
from meterhub.config.loader import ConfigError, ConfigIssue
from meterhub.errors import ConfigurationError, MeterhubError, StorageError
from meterhub.storage.base import StorageError as StorageBackendError

__all__ = ["error_response", "install"]

log = logging.getLogger("meterhub.web")


def _issues(issues: list[ConfigIssue]) -> list[dict[str, Any]]:
    return [
        {"loc": ["body", *[str(p) for p in i.loc]], "msg": i.message, "type": "value_error"} for i in issues
    ]


def error_response(exc: Exception) -> JSONResponse:
    """The answer to ``exc`` (a :class:`~meterhub.errors.MeterhubError`, a site configuration refused by the
    loader, or a storage failure)."""
    if isinstance(exc, InvalidEdit | ConfigError):
        # ConfigError joins the ConfigurationError family with the config rework; its status is that one's.
        return JSONResponse({"detail": _issues(exc.issues)}, status_code=ConfigurationError.http_status)
    if isinstance(exc, StorageError | StorageBackendError):
        return JSONResponse({"detail": f"storage unavailable: {exc}"}, status_code=StorageError.http_status)
    status = exc.http_status if isinstance(exc, MeterhubError) else 500
    return JSONResponse({"detail": str(exc)}, status_code=status)


async def _handle(request: Request, exc: Exception) -> Response:
    response = error_response(exc)
    if response.status_code >= 500:
        log.error("%s %s failed: %s", request.method, request.url.path, exc)
    return response


def install(app: FastAPI) -> None:
    """Answer every meterhub error raised by a route with :func:`error_response`."""
    for family in (MeterhubError, ConfigError, StorageBackendError):
        app.add_exception_handler(family, _handle)
