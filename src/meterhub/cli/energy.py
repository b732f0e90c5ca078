"""CLI commands of the energy area: ``meterhub report``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from meterhub.checks import load_site
from meterhub.cli._app import app
from meterhub.config.loader import ConfigError
from meterhub.config.schema import StorageConfig
from meterhub.energy.reports import ReportError, energy_report, to_csv
from meterhub.energy.timeutil import Interval, parse_date, zone
from meterhub.errors import InputError
from meterhub.model.quantities import Q
from meterhub.storage import StorageError, open_storage

SITE_IN_DATA = "site.yaml"


def _site(config: Path | None, data: Path) -> Any:
    """The site file given, or DATA/site.yaml when present, or None (no tariffs, zones or CO2)."""
    path = config if config is not None else (data / SITE_IN_DATA if (data / SITE_IN_DATA).exists() else None)
    if path is None:
        return None
    try:
        return load_site(path)
    except ConfigError as exc:
        raise InputError(f"configuration error ({len(exc.issues)} problem(s)):\n{exc}") from None


@app.command("report")
def report_command(
    data: Annotated[Path, typer.Option("--data", help="Data folder (SQLite database).")] = Path("data"),
    circuit: Annotated[str | None, typer.Option("--circuit", help="Circuit id (metered or virtual).")] = None,
    zone_: Annotated[str | None, typer.Option("--zone", help="Zone name (sum of its circuits).")] = None,
    from_: Annotated[str, typer.Option("--from", help="First local day, YYYY-MM-DD.")] = "",
    to: Annotated[
        str, typer.Option("--to", help="Local day after the last one (exclusive), YYYY-MM-DD.")
    ] = "",
    interval: Annotated[str, typer.Option("--interval", help="15min | hour | day | month.")] = "day",
    timezone: Annotated[
        str | None, typer.Option("--timezone", help="IANA zone of the days (default: the site's, or UTC).")
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="Site file: tariffs, zones, CO2, storage (default: DATA/site.yaml)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (the default).")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV.")] = False,
) -> None:
    """Energy, energy per tariff, cost, CO2 and maximum demand per interval of a circuit or zone.

    The data is opened read-only (a running gateway's database is never written), and the days are
    those of --timezone, else of the site file, else of the zone stored with the data.
    """
    if as_json and as_csv:
        raise InputError("choose --json or --csv, not both")
    if (circuit is None) == (zone_ is None):
        raise InputError("give --circuit ID or --zone NAME (one of them)")
    if not from_ or not to:
        raise InputError("give --from YYYY-MM-DD and --to YYYY-MM-DD (exclusive)")
    try:
        start, end = parse_date(from_), parse_date(to)
        kind = Interval(interval)
        if timezone is not None:
            zone(timezone)
    except ValueError as exc:
        raise InputError(
            str(exc) if "interval" not in str(exc).lower() else f"{exc}; use 15min, hour, day or month"
        ) from None
    except Exception:
        raise InputError(f"unknown time zone {timezone!r}; use an IANA name such as Europe/Berlin") from None
    if end <= start:
        raise InputError(f"--to {end} must be after --from {start}")
    site = _site(config, data)
    storage_cfg = site.storage if site is not None else StorageConfig()
    if storage_cfg.backend == "sqlite" and not (data / "meterhub.db").exists():
        raise InputError(f"no data in {data} (no meterhub.db); run the gateway or 'meterhub import' first")
    try:
        storage = open_storage(storage_cfg, data, read_only=True)
    except StorageError as exc:
        raise InputError(str(exc)) from None
    tz = timezone or (site.site.timezone if site is not None else storage.timezone)
    try:
        bases = [config.parent if config is not None else None, data]
        report = energy_report(
            storage,
            site,
            start=start,
            end=end,
            interval=kind,
            circuit=circuit,
            zone=zone_,
            timezone=tz,
            base_dirs=bases,
        )
    except (ReportError, ValueError) as exc:
        raise InputError(str(exc)) from None
    finally:
        storage.close()
    if site is None:
        # Without a site file there are no tariffs or CO2 factors: cost and CO2 are unknown, not 0.
        typer.echo(
            f"note: no site file (--config, or {data / SITE_IN_DATA}): cost and CO2 are not computed",
            err=True,
        )
        for row in report["intervals"]:
            row[Q.COST] = row[Q.CO2] = None
    if as_csv:
        sys.stdout.write(to_csv(report))
    else:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
