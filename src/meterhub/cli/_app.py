"""The typer application every CLI module adds its commands to."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="meterhub",
    help="meterhub — open multi-circuit power monitoring and control.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
