"""Command line: ``meterhub demo | run | check-config | commission | analyze | read | scan | simulate | profiles |
central | simulate-fleet | import | report | user``. Each area adds its commands to the one typer app in its own module."""

import meterhub.cli.acquisition
import meterhub.cli.analyze
import meterhub.cli.central
import meterhub.cli.commission
import meterhub.cli.core
import meterhub.cli.energy
import meterhub.cli.storage
import meterhub.cli.users  # noqa: F401 - importing registers the commands
from meterhub.cli._app import app

__all__ = ["app"]
