"""The typer application every CLI module adds its commands to, and the one place errors become exit codes.

A command reports a problem by raising a :class:`~meterhub.errors.MeterhubError` subclass with a message
for a person; :class:`_Commands` prints ``error: MESSAGE`` on stderr and ends the process with
:func:`meterhub.errors.exit_code_of` (2 for what the user can fix, 1 for devices and storage). Anything
else that escapes a command is a bug: one line naming it, never a traceback.
"""

from __future__ import annotations

import logging
from typing import Any

import typer
from typer._click.core import Context  # typer vendors click; its Context is only importable from there
from typer.core import TyperGroup
from typer.exceptions import TyperException

from meterhub.errors import MeterhubError, exit_code_of

__all__ = ["app", "fail"]

log = logging.getLogger("meterhub.cli")


def fail(exc: BaseException) -> None:
    """Print ``exc`` for a person on stderr (verbatim: no markup is interpreted)."""
    if isinstance(exc, MeterhubError):
        typer.echo(f"error: {exc or type(exc).__name__}", err=True)
    else:
        log.debug("unexpected error", exc_info=exc)  # the traceback only with debug logging
        typer.echo(
            f"internal error: {type(exc).__name__}: {exc} (a bug in meterhub; please report it)", err=True
        )


class _Commands(TyperGroup):
    """The root command group: maps every exception a command raises to a message and an exit code."""

    def invoke(self, ctx: Context) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, TyperException):
            raise  # an explicit exit, Ctrl-C, a usage error: typer reports them itself
        except Exception as exc:
            fail(exc)
            ctx.exit(exit_code_of(exc))


app = typer.Typer(
    name="meterhub",
    help="meterhub — open multi-circuit power monitoring and control.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=_Commands,
)
