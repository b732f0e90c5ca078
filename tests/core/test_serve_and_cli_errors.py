"""The gateway process (runtime.serve) and the CLI's one mapping from errors to exit codes."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import typer
from typer.testing import CliRunner

from meterhub.cli._app import _Commands
from meterhub.config.loader import parse_config
from meterhub.errors import InputError, StorageError
from meterhub.model.readings import Reading, SeriesKey
from meterhub.model.topology import Phase
from meterhub.runtime import Serving, serve
from meterhub.storage import open_storage

T0 = 1_763_784_000.0
SITE = "site: {name: Serve test, timezone: UTC}\nbuses: []\ndevices: []\ncircuits: []\n"


def test_sigterm_stops_serving_with_exit_code_0_after_storing_what_was_queued(tmp_path: Path):
    cfg = parse_config(SITE, "site.yaml")
    data = tmp_path / "data"

    def ready(s: Serving) -> None:
        s.gateway.emit([Reading(T0, "main", "voltage", Phase.L1, 231.5)])
        os.kill(os.getpid(), signal.SIGTERM)  # handled by serve's loop, as from systemd or Ctrl+C

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code = asyncio.run(serve(cfg, data_dir=data, host="127.0.0.1", port=port, on_ready=ready))
    assert code == 0
    storage = open_storage(cfg.storage, data)
    points = storage.history(SeriesKey("main", "voltage", Phase.L1), T0, T0 + 1)
    storage.close()
    assert [p.last for p in points] == [231.5]


def test_a_port_in_use_is_one_line_and_exit_code_2(tmp_path: Path):
    site = tmp_path / "site.yaml"
    site.write_text(SITE, encoding="utf-8")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        r = subprocess.run(
            [sys.executable, "-m", "meterhub", "run", "--config", str(site), "--data", str(tmp_path / "d")]
            + ["--port", str(port), "--host", "127.0.0.1"],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "NO_COLOR": "1"},
        )
    assert r.returncode == 2, r.stderr
    assert f"error: port 127.0.0.1:{port} is already in use; choose another with --port" in r.stderr
    assert "Traceback" not in r.stderr + r.stdout


def _app() -> typer.Typer:
    app = typer.Typer(cls=_Commands, add_completion=False, pretty_exceptions_enable=False)

    @app.command()
    def bad_row() -> None:
        raise InputError("readings.csv:12: value 'x' is not a number")

    @app.command()
    def db_down() -> None:
        raise StorageError("postgresql://db.local/meterhub: connection refused")

    @app.command()
    def bug() -> None:
        raise KeyError("circuit")

    @app.command()
    def usage(n: int) -> None:
        del n

    return app


def test_meterhub_errors_end_with_their_familys_exit_code_and_message():
    runner = CliRunner()
    app = _app()
    r = runner.invoke(app, ["bad-row"])
    assert (r.exit_code, r.stderr) == (2, "error: readings.csv:12: value 'x' is not a number\n")
    r = runner.invoke(app, ["db-down"])
    assert (r.exit_code, r.stderr) == (1, "error: postgresql://db.local/meterhub: connection refused\n")


def test_an_unexpected_exception_is_one_line_not_a_traceback():
    r = CliRunner().invoke(_app(), ["bug"])
    assert r.exit_code == 1
    assert r.stderr == "internal error: KeyError: 'circuit' (a bug in meterhub; please report it)\n"
    assert r.exception is None or isinstance(r.exception, SystemExit)


def test_usage_errors_are_still_reported_by_typer():
    r = CliRunner().invoke(_app(), ["usage", "not-a-number"])
    assert r.exit_code == 2 and "Invalid value" in r.stderr
