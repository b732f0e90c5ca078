"""CLI commands of the storage area: ``meterhub import FILE.csv --data DIR``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from meterhub.cli._app import app
from meterhub.config.loader import ConfigError, load_config
from meterhub.config.schema import StorageConfig
from meterhub.storage import Storage, StorageError, open_storage
from meterhub.storage.importer import ImportFileError, import_csv

__all__ = ["import_command"]

#: Bad rows printed on the console; all of them go to ``--errors FILE`` when given.
SHOWN_ERRORS = 20


@app.command("import")
def import_command(
    file: Annotated[Path, typer.Argument(help="CSV with columns timestamp,circuit,quantity,phase,value.")],
    data: Annotated[Path, typer.Option("--data", help="Data folder (SQLite database).")] = Path("data"),
    config: Annotated[
        Path | None,
        typer.Option("--config", help="Site file: use its storage section (e.g. PostgreSQL) and time zone."),
    ] = None,
    timezone: Annotated[
        str | None,
        typer.Option(
            "--timezone", help="IANA zone for timestamps without a UTC offset [default: site's, or UTC]."
        ),
    ] = None,
    errors: Annotated[Path | None, typer.Option("--errors", help="Write every bad row to this file.")] = None,
) -> None:
    """Backfill readings from a CSV file (ISO 8601 timestamps; unknown circuits are created).

    Refused rows are reported with their line number and reason; every good row is stored, in
    transactions of 50 000 rows. Importing the same file again changes nothing. Exit code 0: all
    rows imported; 1: some imported, some refused (or the storage failed part-way); 2: nothing
    imported (unreadable file, bad header, storage unavailable, every row refused).
    """
    console = Console(stderr=True, soft_wrap=True, highlight=False, markup=False)
    out = Console(soft_wrap=True, highlight=False, markup=False)
    storage_cfg = StorageConfig()
    site_tz: str | None = None  # without a site file the database keeps its own day zone
    site_circuits: set[str] | None = None
    if config is not None:
        try:
            site = load_config(config)
        except ConfigError as exc:
            console.print(f"configuration error ({len(exc.issues)} problem(s)):")
            for issue in exc.issues:
                console.print(f"  {issue}", markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(code=2) from None
        storage_cfg, site_tz = site.storage, site.site.timezone
        site_circuits = {c.id for c in site.circuits}
    if timezone is not None:
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            console.print(f"error: --timezone {timezone!r} is not an IANA zone such as Europe/Berlin")
            raise typer.Exit(code=2) from None
    if not file.is_file():
        console.print(f"error: {file}: no such file")
        raise typer.Exit(code=2)
    try:
        # No outage spool: an import reports what reached the database, not what might later.
        storage = open_storage(storage_cfg, data, timezone=site_tz, spool=False)
    except StorageError as exc:
        console.print(f"storage error: {exc}")
        raise typer.Exit(code=2) from None
    size = file.stat().st_size
    try:
        with Progress(
            TextColumn("[bold]importing[/] {task.description}"),
            BarColumn(),
            DownloadColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        ) as bar:
            task = bar.add_task(escape(file.name), total=size or None)
            result = import_csv(
                file,
                storage,
                timezone=timezone or site_tz or "UTC",
                progress=lambda n: bar.update(task, completed=n),
            )
    except ImportFileError as exc:
        console.print(f"error: {file}: {exc}")
        _close(storage, console)
        raise typer.Exit(code=2) from None
    except (StorageError, OSError) as exc:
        console.print(f"import failed: {file}: {exc}; nothing imported")
        _close(storage, console)
        raise typer.Exit(code=2) from None
    _close(storage, console)

    out.print(result.summary())
    if result.new_circuits:
        out.print(f"new circuits: {', '.join(sorted(result.new_circuits))}")
    if site_circuits is not None:
        foreign = sorted({k.circuit for k in result.series} - site_circuits)
        if foreign:
            out.print(f"not circuits of {config}: {', '.join(foreign)}")
    if result.errors:
        console.print(f"refused {len(result.errors)} row(s):")
        for e in result.errors[:SHOWN_ERRORS]:
            console.print(f"  {file}:{e.line}: {e.message}")
        if len(result.errors) > SHOWN_ERRORS:
            console.print(
                f"  … and {len(result.errors) - SHOWN_ERRORS} more"
                + ("" if errors else " (see --errors FILE)")
            )
    if errors is not None and (result.errors or result.stopped):
        try:
            errors.write_text(
                "".join(f"{file}:{e.line}: {e.message}\n" for e in result.errors)
                + (f"{file}:{result.stopped.line}: {result.stopped.message}\n" if result.stopped else ""),
                encoding="utf-8",
            )
            console.print(f"  all refused rows written to {errors}")
        except OSError as exc:
            console.print(f"error: cannot write {errors}: {exc}")
    if result.stopped is not None:
        console.print(f"stopped at {file}:{result.stopped.line}: {result.stopped.message}")
    if result.rows == 0:
        console.print(f"{file}: no data rows after the header")
    raise typer.Exit(code=result.exit_code)


def _close(storage: Storage, console: Console) -> None:
    """Close the storage; a failure to write the last chunk is reported, not raised."""
    try:
        storage.close()
    except StorageError as exc:
        console.print(f"storage error while closing: {exc}")
